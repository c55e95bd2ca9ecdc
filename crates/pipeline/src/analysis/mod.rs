//! The analysis of a video, frame by frame: the backbone's features and ImageNet classes, the
//! temporal head stepping its state forward batch by batch, and online events. One
//! [`Analysis`] holds the loaded models; [`Analysis::worker`] gives another video its own head
//! state on the same backbone, so several videos share one network.

pub mod anomaly;
mod events;
mod motion;
mod record;
mod session;

pub use anomaly::{Anomaly, AnomalySettings};
pub use motion::MotionRecord;
pub use record::{Event, HeadRecord, LiveSummary, Named, Record, Timing, VideoSummary};
pub use session::{Rows, Session};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use burn::prelude::*;
use image::RgbImage;

use crate::backbone::{Backbone, BackboneSettings};
use crate::features::video_batches;
use crate::head::{StepOutput, StreamingHead};
use crate::imagenet::{Scored, top_k};
use crate::model_dir::{ModelCard, SamplingCard, Task};
use crate::sampling::SamplingSettings;
use media::{DecodeOptions, DecodeReport, Decoding, Liveness, ReadOptions, Source};

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
        let selected = args.backbone.select_device()?;
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
        self.head.reset();
        // Started with the first batch, when the source is open and how it reads is known.
        let mut session = None;
        let backbone: &Backbone = &self.backbone;
        let (options, batch, k) = (&self.options, self.batch, self.top);
        let (head, anomaly) = (&self.head, self.anomaly);
        let run = video_batches(source, options, backbone, batch, display, true, |b| {
            let session = session
                .get_or_insert_with(|| Session::new(source, b.liveness, head.fresh(), anomaly, k));
            let features = b.host_features()?;
            let tops = top_k(backbone.classify(b.features), k)?;
            let rows = Rows {
                timestamps: &b.timestamps,
                features: &features,
                tops,
                motion: b.motion.as_deref(),
                luma: &b.luma,
                arrivals: &b.arrivals,
                captures: &b.captures,
                gap: b.gap,
                frames: b.frames,
            };
            session.step(backbone, rows, &mut emit)
        })?;
        let liveness = run.info.liveness;
        let session =
            session.unwrap_or_else(|| Session::new(source, liveness, head.fresh(), anomaly, k));
        Ok(session.finish(&run.decode, liveness))
    }

    /// Runs several sources at once on the one backbone: a decoder per source, batches that
    /// mix frames from all of them as they arrive, a head state per source. `emit` gets each
    /// record with its source's index; `ended` each source's outcome as it ends (a source that
    /// cannot be opened, or fails, ends with its error; the others carry on).
    pub fn videos(
        &self,
        sources: &[Source],
        display: Option<u32>,
        mut emit: impl FnMut(usize, Record, Option<RgbImage>) -> Result<()>,
        mut ended: impl FnMut(usize, Result<VideoSummary>),
    ) {
        let batch = self.batch;
        let options = DecodeOptions {
            display,
            ..self.options.clone()
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<Arrived>(2 * batch);
        let mut sessions: Vec<Option<Session>> = Vec::new();
        let mut forwarders = Vec::new();
        // Raised for a source that failed: its forwarder stops, and so does its decoder.
        let abandoned: Vec<Arc<AtomicBool>> = sources
            .iter()
            .map(|_| Arc::new(AtomicBool::new(false)))
            .collect();
        // Opened all at once: opening reads a second or so of each stream, and a source opened
        // first would wait for the others with its frames queued.
        let opened: Vec<Result<Decoding>> = std::thread::scope(|scope| {
            let opening: Vec<_> = sources
                .iter()
                .map(|source| {
                    let options = options.clone();
                    scope.spawn(move || Ok(Decoding::open(source, options, 2 * batch)?))
                })
                .collect();
            opening
                .into_iter()
                .zip(sources)
                .map(|(handle, source)| {
                    handle.join().unwrap_or_else(|_| {
                        Err(anyhow::anyhow!("{}: opening it panicked", source.name()))
                    })
                })
                .collect()
        });
        for (i, (source, opened)) in sources.iter().zip(opened).enumerate() {
            sessions.push(None);
            let decoding = match opened {
                Ok(decoding) => decoding,
                Err(e) => {
                    ended(i, Err(e));
                    continue;
                }
            };
            sessions[i] = Some(Session::new(
                source,
                decoding.info.liveness,
                self.head.fresh(),
                self.anomaly,
                self.top,
            ));
            let tx = tx.clone();
            let abandoned = Arc::clone(&abandoned[i]);
            forwarders.push(std::thread::spawn(move || {
                let liveness = decoding.info.liveness;
                for frame in decoding.frames.iter() {
                    if abandoned.load(Ordering::Relaxed)
                        || tx.send(Arrived::Frame(i, Box::new(frame))).is_err()
                    {
                        break;
                    }
                }
                let report = decoding.finish();
                let _ = tx.send(Arrived::End(i, report, liveness));
            }));
        }
        drop(tx);
        let mut ends = Vec::new();
        loop {
            // A batch: what has arrived, at least one frame (or an end), at most `batch`.
            let mut frames: Vec<(usize, media::Frame)> = Vec::new();
            let mut next = rx.recv().ok();
            while let Some(arrived) = next.take() {
                match arrived {
                    Arrived::Frame(i, frame) => frames.push((i, *frame)),
                    // Its frames are all in this batch or before it.
                    Arrived::End(i, report, liveness) => ends.push((i, report, liveness)),
                }
                if frames.len() < batch && ends.is_empty() {
                    next = rx.try_recv().ok();
                }
            }
            if frames.is_empty() && ends.is_empty() {
                break;
            }
            if !frames.is_empty() {
                // A failed source's session goes: its later frames and its end are ignored.
                for (i, e) in self.mixed_batch(&mut sessions, frames, &mut emit) {
                    abandoned[i].store(true, Ordering::Relaxed);
                    sessions[i] = None;
                    ended(i, Err(e));
                }
            }
            for (i, report, liveness) in ends.drain(..) {
                let Some(session) = sessions[i].take() else {
                    continue;
                };
                match report {
                    Ok(report) => ended(i, Ok(session.finish(&report, liveness))),
                    Err(e) => ended(i, Err(e.into())),
                }
            }
        }
        for forwarder in forwarders {
            let _ = forwarder.join();
        }
    }

    /// One batch of frames from several sources through the backbone, then each source's
    /// frames, in order, through its session (a gap starts a new run of rows). Returns the
    /// sources that failed, with their errors; the others went on.
    fn mixed_batch(
        &self,
        sessions: &mut [Option<Session>],
        frames: Vec<(usize, media::Frame)>,
        emit: &mut impl FnMut(usize, Record, Option<RgbImage>) -> Result<()>,
    ) -> Vec<(usize, anyhow::Error)> {
        let n = frames.len();
        let mut rgb = Vec::with_capacity(n * frames[0].1.rgb.len());
        for (_, frame) in &frames {
            rgb.extend_from_slice(&frame.rgb);
        }
        let features = self.backbone.features(rgb, n);
        let computed = features
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading features from the device: {e:?}"))
            .and_then(|all| Ok((all, top_k(self.backbone.classify(features), self.top)?)));
        let (all, tops) = match computed {
            Ok(computed) => computed,
            Err(e) => {
                let mut sources: Vec<usize> = frames.iter().map(|(i, _)| *i).collect();
                sources.sort_unstable();
                sources.dedup();
                let message = format!("{e:#}");
                return sources
                    .into_iter()
                    .map(|i| (i, anyhow::anyhow!("{message}")))
                    .collect();
            }
        };
        let dim = vision::FEATURE_DIM;
        // Each source's runs of rows: its frames in order, a new run at each gap.
        let mut runs: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut open: Vec<Option<usize>> = vec![None; sessions.len()];
        for (row, (source, frame)) in frames.iter().enumerate() {
            match open[*source] {
                Some(run) if frame.gap.is_none() => runs[run].1.push(row),
                _ => {
                    open[*source] = Some(runs.len());
                    runs.push((*source, vec![row]));
                }
            }
        }
        let mut tops: Vec<Option<Vec<Scored>>> = tops.into_iter().map(Some).collect();
        let mut frames: Vec<Option<media::Frame>> =
            frames.into_iter().map(|(_, f)| Some(f)).collect();
        let mut failed = Vec::new();
        for (source, rows) in runs {
            if failed.iter().any(|(f, _)| *f == source) {
                continue;
            }
            let Some(session) = sessions[source].as_mut() else {
                continue;
            };
            let taken: Vec<media::Frame> = rows.iter().filter_map(|&r| frames[r].take()).collect();
            let features: Vec<f32> = rows
                .iter()
                .flat_map(|&r| &all[r * dim..(r + 1) * dim])
                .copied()
                .collect();
            let timestamps: Vec<f64> = taken.iter().map(|f| f.timestamp).collect();
            let luma: Vec<(f32, f32)> = taken
                .iter()
                .map(|f| crate::features::luma_stats(&f.rgb))
                .collect();
            let arrivals: Vec<_> = taken.iter().map(|f| f.arrival).collect();
            let captures: Vec<_> = taken.iter().map(|f| f.captured).collect();
            let gap = taken.first().and_then(|f| f.gap);
            let mut motion = Vec::with_capacity(taken.len());
            let mut shown = Vec::with_capacity(taken.len());
            for frame in taken {
                motion.push(frame.motion);
                shown.push(
                    frame
                        .display
                        .and_then(|d| RgbImage::from_raw(d.width, d.height, d.rgb)),
                );
            }
            let motion: Option<Vec<media::Motion>> = motion.into_iter().collect();
            let rows = Rows {
                timestamps: &timestamps,
                features: &features,
                tops: rows
                    .iter()
                    .map(|&r| tops[r].take().unwrap_or_default())
                    .collect(),
                motion: motion.as_deref(),
                luma: &luma,
                arrivals: &arrivals,
                captures: &captures,
                gap,
                frames: shown.into_iter().collect(),
            };
            if let Err(e) = session.step(&self.backbone, rows, &mut |r, f| emit(source, r, f)) {
                failed.push((source, e));
            }
        }
        failed
    }
}

/// What a source's forwarding thread hands the batching loop.
enum Arrived {
    Frame(usize, Box<media::Frame>),
    End(usize, media::Result<DecodeReport>, Liveness),
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

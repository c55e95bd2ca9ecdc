//! The frame-to-feature loop every command shares: a video decoded on a thread of its own,
//! its sampled frames batched through the backbone as they arrive.

use std::path::Path;
use std::sync::mpsc::TryRecvError;
use std::time::{Instant, SystemTime};

use anyhow::{Context as _, Result};
use burn::prelude::*;
use image::RgbImage;

use crate::backbone::Backbone;
use crate::progress::{self, BarSpec, Unit};
use media::{DecodeOptions, DecodeReport, Decoding, Liveness, Motion, Source, VideoInfo};

/// A batch of sampled frames and their features.
#[derive(Debug)]
pub struct FeatureBatch {
    pub timestamps: Vec<f64>,
    /// `[N, 1280]`, on the backbone's device.
    pub features: Tensor<2>,
    /// The whole frames the features came from, as shown (display rotation applied, longer
    /// side at most the size asked of [`video_batches`]), one per timestamp, when asked for.
    pub frames: Option<Vec<RgbImage>>,
    /// The motion of each timestamp's interval, when the decode measured it.
    pub motion: Option<Vec<Motion>>,
    /// Mean and standard deviation of each model input's luma (BT.601, 0-255), when asked for
    /// (empty otherwise).
    pub luma: Vec<(f32, f32)>,
    /// When each frame's data arrived.
    pub arrivals: Vec<SystemTime>,
    /// When each frame was captured, where the source says (RTSP's sender reports).
    pub captures: Vec<Option<SystemTime>>,
    /// The seconds of stream lost before this batch's first frame (a live source reconnected):
    /// a batch never spans a gap.
    pub gap: Option<f64>,
    /// How the source is read (known once it is open).
    pub liveness: Liveness,
}

impl FeatureBatch {
    /// The features as row-major values on the host, `[N x 1280]`.
    pub fn host_features(&self) -> Result<Vec<f32>> {
        self.features
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading features from the device: {e:?}"))
    }
}

/// What a finished video run reports.
#[derive(Debug)]
pub struct VideoRun {
    pub info: VideoInfo,
    pub decode: DecodeReport,
    pub seconds: f64,
}

/// Decodes `path` on a thread of its own and runs the backbone on batches of up to `batch`
/// frames as they arrive, handing each batch to `sink`. Decoding of the next frames overlaps
/// with the network on the current batch; at most two batches of frames wait in between.
pub fn video_features(
    path: &Path,
    options: &DecodeOptions,
    backbone: &Backbone,
    batch: usize,
    sink: impl FnMut(FeatureBatch) -> Result<()>,
) -> Result<VideoRun> {
    video_batches(
        &Source::file(path),
        options,
        backbone,
        batch,
        None,
        false,
        sink,
    )
}

/// [`video_features`] for any source, handing the sink the whole frames too when `display`
/// gives their longer side (never scaled up): the decoder's converter threads make them beside
/// the model's input; and each frame's luma statistics when `luma`.
///
/// A live source's batches never wait to fill: each takes what has arrived (at least one
/// frame), so records keep up with the source; the decoder drops frames before conversion
/// when more than two batches wait.
pub fn video_batches(
    source: &Source,
    options: &DecodeOptions,
    backbone: &Backbone,
    batch: usize,
    display: Option<u32>,
    luma: bool,
    mut sink: impl FnMut(FeatureBatch) -> Result<()>,
) -> Result<VideoRun> {
    let started = Instant::now();
    let size = options.size as usize;
    let options = DecodeOptions {
        display,
        ..options.clone()
    };
    let decoding = Decoding::open(source, options, 2 * batch)?;
    let info = decoding.info.clone();
    let live = info.liveness == Liveness::Live;
    let name = source.name();
    let bar = video_bar(source, &info);
    let mut sampled = 0u64;
    // A frame after a gap, held back to start the next batch.
    let mut held = None;
    loop {
        let mut rgb = Vec::with_capacity(batch * size * size * 3);
        let mut timestamps = Vec::new();
        let mut frames = display.map(|_| Vec::with_capacity(batch));
        let mut motion = Vec::with_capacity(batch);
        let mut lumas = Vec::with_capacity(if luma { batch } else { 0 });
        let mut arrivals = Vec::with_capacity(batch);
        let mut captures = Vec::with_capacity(batch);
        let mut gap = None;
        // Fill a batch (the last one may be short): full batches keep every core busy. A live
        // source's batch takes what is there once it has a frame.
        while timestamps.len() < batch {
            let next = match held.take() {
                Some(frame) => Ok(frame),
                None if live && !timestamps.is_empty() => match decoding.frames.try_recv() {
                    Err(TryRecvError::Empty) => break,
                    other => other.map_err(|_| ()),
                },
                None => decoding.frames.recv().map_err(|_| ()),
            };
            let Ok(frame) = next else {
                break;
            };
            if frame.gap.is_some() {
                if !timestamps.is_empty() {
                    held = Some(frame);
                    break;
                }
                gap = frame.gap;
            }
            arrivals.push(frame.arrival);
            captures.push(frame.captured);
            rgb.extend_from_slice(&frame.rgb);
            if luma {
                lumas.push(luma_stats(&frame.rgb));
            }
            timestamps.push(frame.timestamp);
            motion.push(frame.motion);
            if let Some(frames) = frames.as_mut() {
                let shown = frame
                    .display
                    .and_then(|d| RgbImage::from_raw(d.width, d.height, d.rgb))
                    .with_context(|| {
                        format!(
                            "{name}: the decoder gave no whole frame at {:.3} s",
                            frame.timestamp
                        )
                    })?;
                frames.push(shown);
            }
        }
        if timestamps.is_empty() {
            break;
        }
        let n = timestamps.len();
        sampled += n as u64;
        if let Some(&t) = timestamps.last() {
            bar.set_position((t * 10.0) as u64);
        }
        bar.set_message(format!(
            "{sampled} frames, {:.1} frames/s",
            sampled as f64 / started.elapsed().as_secs_f64()
        ));
        sink(FeatureBatch {
            timestamps,
            features: backbone.features(rgb, n),
            frames,
            motion: motion.into_iter().collect(),
            luma: lumas,
            arrivals,
            captures,
            gap,
            liveness: info.liveness,
        })?;
    }
    drop(bar);
    let decode = decoding.finish()?;
    if decode.damaged > 0 {
        tracing::warn!(
            "{name}: skipped {} damaged packets or frames ({})",
            decode.damaged,
            decode.warnings.join("; ")
        );
    }
    Ok(VideoRun {
        info,
        decode,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Mean and standard deviation of the luma (BT.601) of RGB bytes.
pub fn luma_stats(rgb: &[u8]) -> (f32, f32) {
    let (mut sum, mut sq, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for p in rgb.chunks_exact(3) {
        let y = 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
        sum += y;
        sq += y * y;
        n += 1.0;
    }
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let mean = sum / n;
    (mean as f32, (sq / n - mean * mean).max(0.0).sqrt() as f32)
}

/// A progress bar over video time (tenths of a second), named after the file (or the source,
/// redacted); without a total on a live source.
fn video_bar(source: &Source, info: &VideoInfo) -> progress::Bar {
    let name = match source.path() {
        Some(path) => path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        None => source.name(),
    };
    let live = info.liveness == Liveness::Live;
    progress::bar(BarSpec {
        prefix: name,
        total: info
            .duration
            .filter(|_| !live)
            .map(|d| (d * 10.0).ceil() as u64),
        unit: Unit::VideoTime,
    })
}

/// Decoder counters and sampling as safetensors/JSON metadata.
pub fn describe_decode(report: &DecodeReport) -> String {
    if report.damaged == 0 {
        "none".into()
    } else {
        format!(
            "{} damaged packets or frames skipped: {}",
            report.damaged,
            report.warnings.join("; ")
        )
    }
}

/// Where motion comes from under `options`, for metadata: `codec or estimated`, `estimated`,
/// or `off` (and why).
pub fn describe_motion(options: &DecodeOptions) -> String {
    match options.motion {
        _ if options.sampling.keyframes => "off (key frames only)".into(),
        media::MotionSource::Off => "off".into(),
        media::MotionSource::Auto => "codec or estimated".into(),
        media::MotionSource::Estimated => "estimated".into(),
    }
}

//! One module per subcommand, plus the frame-to-feature loop they share.

pub mod batch;
pub mod bench;
pub mod classify;
pub mod eval;
pub mod extract;
pub mod info;
pub mod run;
pub mod train;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use burn::prelude::*;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::backbone::Backbone;
use crate::cli::{ModelArgs, SamplingArgs};
use crate::decode::{DecodeOptions, DecodeReport, Decoding, VideoInfo};
use crate::inputs::InputFile;

/// What every multi-file command does before work starts: validate the sampling flags, expand
/// the inputs (keeping directory entries `keep` accepts), pick the device, load the backbone.
pub fn prepare(
    inputs: &[PathBuf],
    sampling: &SamplingArgs,
    model: &ModelArgs,
    keep: impl Fn(&Path) -> bool,
) -> Result<(DecodeOptions, Vec<InputFile>, Backbone)> {
    let options = sampling.options()?;
    let files = crate::inputs::collect(inputs, keep)?;
    let selected = crate::device::select(model.device)?;
    tracing::info!("device: {}", selected.description);
    let backbone = Backbone::load(model, options.size, &selected.device)?;
    Ok((options, files, backbone))
}

/// A batch of sampled frames and their features.
#[derive(Debug)]
pub struct FeatureBatch {
    pub timestamps: Vec<f64>,
    /// `[N, 1280]`, on the backbone's device.
    pub features: Tensor<2>,
    /// The frames the features came from (`N x size x size x 3` RGB), when asked for.
    pub frames: Option<Vec<u8>>,
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
    video_batches(path, options, backbone, batch, false, sink)
}

/// [`video_features`], handing the sink the frames too when `keep_frames`.
pub fn video_batches(
    path: &Path,
    options: &DecodeOptions,
    backbone: &Backbone,
    batch: usize,
    keep_frames: bool,
    mut sink: impl FnMut(FeatureBatch) -> Result<()>,
) -> Result<VideoRun> {
    let started = Instant::now();
    let decoding = Decoding::start(path, options.clone(), 2 * batch)?;
    let info = decoding.info.clone();
    let bar = video_bar(path, &info);
    let size = options.size as usize;
    let mut sampled = 0u64;
    loop {
        let mut rgb = Vec::with_capacity(batch * size * size * 3);
        let mut timestamps = Vec::new();
        // Fill a batch (the last one may be short): full batches keep every core busy.
        while timestamps.len() < batch {
            let Ok(frame) = decoding.frames.recv() else {
                break;
            };
            rgb.extend_from_slice(&frame.rgb);
            timestamps.push(frame.timestamp);
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
        let frames = keep_frames.then(|| rgb.clone());
        sink(FeatureBatch {
            timestamps,
            features: backbone.features(rgb, n),
            frames,
        })?;
    }
    bar.finish_and_clear();
    let decode = decoding.finish()?;
    if decode.damaged > 0 {
        tracing::warn!(
            "{}: skipped {} damaged packets or frames ({})",
            path.display(),
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

/// Every progress bar goes through this, so nested ones (clips, then frames of a clip) draw
/// together instead of over each other.
pub fn bars() -> &'static MultiProgress {
    static BARS: std::sync::OnceLock<MultiProgress> = std::sync::OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
}

/// A progress bar over video time (tenths of a second), on stderr, hidden when not a terminal.
fn video_bar(path: &Path, info: &VideoInfo) -> ProgressBar {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let bar = match info.duration {
        Some(d) => ProgressBar::new((d * 10.0).ceil() as u64).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner(),
    };
    bar.set_prefix(name);
    bars().add(bar)
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

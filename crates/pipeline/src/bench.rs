//! Frames/s of each stage alone and end to end, min/median/max over repeats: what
//! `pipeline bench` reports.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};

use crate::analysis::{Analysis, AnalysisSettings};
use crate::backbone::{Backbone, BackboneSettings, LayerTime};
use crate::features::video_features;
use crate::head::StreamingHead;
use crate::sampling::SamplingSettings;
use media::Decoding;

/// Which part of the work is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Each of the stages below in turn (not `Layers`).
    All,
    /// Demux, decode, sample, scale and crop.
    Decode,
    /// The backbone alone on batches already in memory.
    Cnn,
    /// `extract` without writing: decode and CNN overlapped.
    Extract,
    /// The temporal head alone, stepping through batches of features already in memory.
    Head,
    /// `run` without writing: decode, CNN, ImageNet top-k, the head and events.
    Run,
    /// Where the CNN stage's time goes, layer by layer.
    Layers,
}

/// What to time, on what.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    pub input: PathBuf,
    pub stages: Vec<Stage>,
    /// Timed runs per stage (after one untimed warm-up).
    pub repeats: u32,
    /// The head for the head and run stages; `None`: the built-in forecaster.
    pub head: Option<PathBuf>,
    pub sampling: SamplingSettings,
    pub backbone: BackboneSettings,
}

/// Times the stages and writes one line per stage (and the layer profile) to `out`.
pub fn run(args: &BenchSettings, out: &mut dyn Write) -> Result<()> {
    let options = args.sampling.options()?;
    let selected = args.backbone.select_device()?;
    let batch = args.backbone.batch as usize;
    writeln!(
        out,
        "file: {}  device: {}  precision: {}  batch: {batch}  threads: {}  converters: {}",
        args.input.display(),
        selected.description,
        args.backbone.precision.name(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        media::converters()
    )?;
    let mut stages = Vec::new();
    for stage in &args.stages {
        let expanded: &[Stage] = match stage {
            Stage::All => &[
                Stage::Decode,
                Stage::Cnn,
                Stage::Head,
                Stage::Extract,
                Stage::Run,
            ],
            one => std::slice::from_ref(one),
        };
        for &stage in expanded {
            if !stages.contains(&stage) {
                stages.push(stage);
            }
        }
    }
    let needs_model = stages
        .iter()
        .any(|s| matches!(s, Stage::Cnn | Stage::Extract | Stage::Layers));
    let backbone = needs_model
        .then(|| Backbone::load(&args.backbone, options.size, &selected.device))
        .transpose()?;
    let mut head = stages
        .contains(&Stage::Head)
        .then(|| StreamingHead::load(args.head.as_deref()))
        .transpose()?;
    let mut analysis = stages
        .contains(&Stage::Run)
        .then(|| {
            // The same frames as the other stages: every frame unless the flags say otherwise,
            // not the head's own sampling.
            let mut sampling = args.sampling.clone();
            if sampling.fps.is_none() && sampling.stride.is_none() {
                sampling.stride = Some(1);
            }
            Analysis::prepare(&AnalysisSettings {
                model: args.head.clone(),
                top: 3,
                sampling,
                backbone: args.backbone.clone(),
                anomaly: Default::default(),
                read: Default::default(),
            })
        })
        .transpose()?;
    for stage in &stages {
        if let (Stage::Layers, Some(b)) = (stage, &backbone) {
            layers(b, batch, args.repeats as usize, out)?;
            continue;
        }
        let mut rates = Vec::new();
        let mut frames = 0;
        // One untimed warm-up (caches, allocator, kernels), then the timed repeats.
        for repeat in 0..=args.repeats {
            let started = Instant::now();
            frames = match (stage, &backbone) {
                (Stage::Decode, _) => decode_only(args, &options)?,
                (Stage::Cnn, Some(b)) => cnn_only(b, batch, options.size as usize)?,
                (Stage::Extract, Some(b)) => {
                    let mut n = 0;
                    video_features(&args.input, &options, b, batch, |fb| {
                        // Read the features back, as extract does: the work is really done.
                        let values = fb.features.into_data();
                        n += values.shape()[0];
                        Ok(())
                    })?;
                    n
                }
                (Stage::Head, _) => match head.as_mut() {
                    Some(h) => head_only(h, batch)?,
                    None => bail!("no head loaded"),
                },
                (Stage::Run, _) => match analysis.as_mut() {
                    Some(a) => {
                        a.video(&media::Source::file(&args.input), None, |_, _| Ok(()))?
                            .frames as usize
                    }
                    None => bail!("no analysis loaded"),
                },
                _ => bail!("stage {stage:?} needs the model"),
            };
            if repeat > 0 {
                rates.push(frames as f64 / started.elapsed().as_secs_f64());
            }
        }
        rates.sort_by(f64::total_cmp);
        writeln!(
            out,
            "{:<8} {:>8.1} frames/s median  (min {:.1}, max {:.1}; {} frames x {} runs)",
            format!("{stage:?}").to_lowercase(),
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1],
            frames,
            rates.len()
        )?;
    }
    Ok(())
}

/// Decode, sample, scale and crop every frame, on the threads `extract` uses; nothing else.
fn decode_only(args: &BenchSettings, options: &media::DecodeOptions) -> Result<usize> {
    let decoding = Decoding::start(&args.input, options.clone(), 32)?;
    let n = decoding.frames.iter().count();
    decoding.finish()?;
    Ok(n)
}

/// The head alone on 64 batches of features (the same row of varied values repeated), from a
/// fresh state each time.
fn head_only(head: &mut StreamingHead, batch: usize) -> Result<usize> {
    const BATCHES: usize = 64;
    let dim = head.card.model.input_dim;
    let row: Vec<f32> = (0..dim).map(|i| (i % 7) as f32 * 0.1).collect();
    let features: Vec<f32> = row.iter().copied().cycle().take(batch * dim).collect();
    head.reset();
    for _ in 0..BATCHES {
        head.step(&features, batch)?;
    }
    Ok(BATCHES * batch)
}

/// The network alone on 8 batches of mid-grey frames (upload, normalise, features, read back).
fn cnn_only(backbone: &Backbone, batch: usize, size: usize) -> Result<usize> {
    const BATCHES: usize = 8;
    for _ in 0..BATCHES {
        let features = backbone.features(vec![128u8; batch * size * size * 3], batch);
        features
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow!("reading features: {e:?}"))?;
    }
    Ok(BATCHES * batch)
}

/// The per-layer profile: one untimed batch, then `repeats` timed ones; the median time of each
/// step, then the totals by kind of layer.
fn layers(backbone: &Backbone, batch: usize, repeats: usize, out: &mut dyn Write) -> Result<()> {
    backbone.layer_times(batch)?;
    let runs = (0..repeats)
        .map(|_| backbone.layer_times(batch))
        .collect::<Result<Vec<_>>>()?;
    let steps = median_steps(&runs);
    let (how, unit) = if backbone.on_cpu() {
        (
            "CPU kernels timed inside each frame's thread",
            "ms of thread time",
        )
    } else {
        ("device synchronised after each step", "ms")
    };
    writeln!(
        out,
        "layers   {how}; median of {repeats} runs, {unit} per batch"
    )?;
    for step in &steps {
        let [n, c, h, w] = step.dims;
        writeln!(
            out,
            "  {:<10} {:>18} {:>9.3}",
            step.name,
            format!("{n}x{c}x{h}x{w}"),
            step.seconds * 1e3
        )?;
    }
    let total: f64 = steps.iter().map(|s| s.seconds).sum();
    let mut kinds: Vec<&str> = Vec::new();
    for step in &steps {
        if !kinds.contains(&step.name) {
            kinds.push(step.name);
        }
    }
    let shares: Vec<String> = kinds
        .iter()
        .map(|kind| {
            let t: f64 = steps
                .iter()
                .filter(|s| s.name == *kind)
                .map(|s| s.seconds)
                .sum();
            format!("{kind} {:.2} ms ({:.0}%)", t * 1e3, 100.0 * t / total)
        })
        .collect();
    writeln!(out, "  by kind: {}", shares.join(", "))?;
    if backbone.on_cpu() {
        writeln!(
            out,
            "  total {:.2} {unit} per batch of {batch}: {:.2} ms a frame, {:.1} frames/s a thread",
            total * 1e3,
            total * 1e3 / batch as f64,
            batch as f64 / total
        )?;
    } else {
        writeln!(
            out,
            "  total {:.2} ms per batch of {batch}: {:.1} frames/s synchronised",
            total * 1e3,
            batch as f64 / total
        )?;
    }
    Ok(())
}

/// Step by step, the median time over runs of the same steps.
fn median_steps(runs: &[Vec<LayerTime>]) -> Vec<LayerTime> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let mut times: Vec<f64> = runs.iter().map(|run| run[i].seconds).collect();
            times.sort_by(f64::total_cmp);
            LayerTime {
                seconds: times[times.len() / 2],
                ..step.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_profile_takes_each_steps_median() {
        let run = |ms: [f64; 2]| {
            ms.iter()
                .zip(["stem", "expand"])
                .map(|(&t, name)| LayerTime {
                    name,
                    dims: [1, 2, 3, 4],
                    seconds: t / 1e3,
                })
                .collect::<Vec<_>>()
        };
        let steps = median_steps(&[run([3.0, 1.0]), run([1.0, 9.0]), run([2.0, 5.0])]);
        let got: Vec<_> = steps.iter().map(|s| (s.name, s.seconds * 1e3)).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "stem");
        assert!((got[0].1 - 2.0).abs() < 1e-9 && (got[1].1 - 5.0).abs() < 1e-9);
        assert!(median_steps(&[]).is_empty());
    }
}

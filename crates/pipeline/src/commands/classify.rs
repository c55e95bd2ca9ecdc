//! `pipeline classify`: ImageNet top-K for images and for the sampled frames of videos.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use image::imageops::FilterType;
use serde::Serialize;

use super::{prepare, video_features};
use crate::cli::ClassifyArgs;
use crate::{Failures, inputs};

/// One class of a top-K list.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub index: usize,
    pub label: &'static str,
    pub probability: f32,
}

#[derive(Debug, Serialize)]
struct Record<'a> {
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<f64>,
    top: Vec<Scored>,
}

/// The `k` most probable classes of each row of `logits` `[N, 1000]`.
pub fn top_k(logits: Tensor<2>, k: usize) -> Result<Vec<Vec<Scored>>> {
    let [n, classes] = logits.dims();
    let probs = softmax(logits, 1)
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("reading probabilities: {e:?}"))?;
    let labels = vision::labels::imagenet_classes();
    Ok((0..n)
        .map(|row| {
            let p = &probs[row * classes..(row + 1) * classes];
            let mut idx: Vec<usize> = (0..classes).collect();
            idx.select_nth_unstable_by(k.min(classes) - 1, |&a, &b| p[b].total_cmp(&p[a]));
            idx.truncate(k);
            idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
            idx.into_iter()
                .map(|index| Scored {
                    index,
                    label: labels.get(index).copied().unwrap_or("?"),
                    probability: p[index],
                })
                .collect()
        })
        .collect())
}

pub fn run(args: &ClassifyArgs) -> Result<Failures> {
    let (options, files, backbone) = prepare(&args.inputs, &args.sampling, &args.model, |p| {
        inputs::is_video(p) || inputs::is_image(p)
    })?;
    let k = args.top as usize;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failures = Failures::default();
    for file in &files {
        let source = file.path.display().to_string();
        let mut emit = |timestamp: Option<f64>, top: Vec<Scored>| -> Result<()> {
            let record = Record {
                source: &source,
                timestamp,
                top,
            };
            if args.json {
                serde_json::to_writer(&mut out, &record)?;
                writeln!(out)?;
            } else {
                writeln!(out, "{}", text_line(&record))?;
            }
            Ok(())
        };
        let result = if inputs::is_image(&file.path) {
            load_image(&file.path, options.size).and_then(|rgb| {
                let logits = backbone.classify(backbone.features(rgb, 1));
                let top = top_k(logits, k)?.into_iter().next().unwrap_or_default();
                emit(None, top)
            })
        } else {
            video_features(
                &file.path,
                &options,
                &backbone,
                args.model.batch as usize,
                |b| {
                    let tops = top_k(backbone.classify(b.features), k)?;
                    for (t, top) in b.timestamps.into_iter().zip(tops) {
                        emit(Some(t), top)?;
                    }
                    Ok(())
                },
            )
            .map(|_| ())
        };
        out.flush()?;
        failures.record(result.with_context(|| source.clone()));
    }
    Ok(failures)
}

fn text_line(record: &Record) -> String {
    let top: Vec<String> = record
        .top
        .iter()
        .map(|s| format!("{} ({}) {:.3}", s.label, s.index, s.probability))
        .collect();
    match record.timestamp {
        Some(t) => format!("{} @ {t:.3}s: {}", record.source, top.join(", ")),
        None => format!("{}: {}", record.source, top.join(", ")),
    }
}

/// Reads a still image the ImageNet way: shorter side to `size * 256 / 224` (bilinear), then
/// the centre `size x size` square (the protocol the reference implementation uses).
fn load_image(path: &Path, size: u32) -> Result<Vec<u8>> {
    let img = image::ImageReader::open(path)
        .context("cannot read file")?
        .with_guessed_format()
        .context("cannot read file")?
        .decode()
        .map_err(|e| anyhow!("not a readable image: {e}"))?
        .into_rgb8();
    let (w, h) = img.dimensions();
    let short = (f64::from(size) * 256.0 / 224.0).round();
    let k = short / f64::from(w.min(h));
    let (rw, rh) = (
        ((f64::from(w) * k).round() as u32).max(size),
        ((f64::from(h) * k).round() as u32).max(size),
    );
    let resized = image::imageops::resize(&img, rw, rh, FilterType::Triangle);
    let cropped = image::imageops::crop_imm(&resized, (rw - size) / 2, (rh - size) / 2, size, size);
    Ok(cropped.to_image().into_raw())
}

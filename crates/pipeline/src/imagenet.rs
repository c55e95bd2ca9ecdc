//! ImageNet classes: top-K of the backbone's classifier, still images read the ImageNet way,
//! and the records `pipeline classify` prints.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use image::imageops::FilterType;
use serde::Serialize;

/// One class of a top-K list.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub index: usize,
    pub label: &'static str,
    pub probability: f32,
}

/// The classes of one image or sampled frame.
#[derive(Debug, Serialize)]
pub struct Classified<'a> {
    pub source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
    pub top: Vec<Scored>,
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

impl Classified<'_> {
    /// `source @ 1.250s: label (index) 0.912, ...`, or without the time for an image.
    pub fn text_line(&self) -> String {
        let record = self;
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
}

/// Reads a still image the ImageNet way: shorter side to `size * 256 / 224` (bilinear), then
/// the centre `size x size` square (the protocol the reference implementation uses).
pub fn load_image(path: &Path, size: u32) -> Result<Vec<u8>> {
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

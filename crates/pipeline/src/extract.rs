//! One video's per-frame features to a safetensors file, with what made them in its metadata:
//! what `pipeline extract` does for each input.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use crate::backbone::Backbone;
use crate::features::{describe_decode, describe_motion, video_features};
use crate::output::FeatureWriter;
use media::{DecodeOptions, MotionSource};

/// What one extraction did.
#[derive(Debug, Clone)]
pub struct Extracted {
    pub frames: usize,
    pub seconds: f64,
}

/// Features of `input`'s sampled frames to `out` (which appears only when complete).
pub fn extract_video(
    input: &Path,
    out: &Path,
    options: &DecodeOptions,
    backbone: &Backbone,
) -> Result<Extracted> {
    let motion = options.motion != MotionSource::Off && !options.sampling.keyframes;
    let mut writer = FeatureWriter::create(out, vision::FEATURE_DIM, motion)?;
    let run = video_features(input, options, backbone, backbone.batch(), |b| {
        writer.push(&b.host_features()?, &b.timestamps, b.motion.as_deref())
    })?;
    let frames = writer.len();
    let metadata = BTreeMap::from([
        ("source".to_string(), input.display().to_string()),
        ("backbone".to_string(), backbone.variant_name().to_string()),
        ("weights".to_string(), backbone.weights.clone()),
        (
            "precision".to_string(),
            backbone.precision().name().to_string(),
        ),
        ("sampling".to_string(), options.sampling.describe()),
        ("input_size".to_string(), format!("{0}x{0}", options.size)),
        (
            "frame_size".to_string(),
            format!("{}x{}", run.info.width, run.info.height),
        ),
        ("rotation".to_string(), run.info.rotation.to_string()),
        ("codec".to_string(), run.info.codec.clone()),
        ("motion".to_string(), describe_motion(options)),
        ("decoder_warnings".to_string(), describe_decode(&run.decode)),
        ("frames".to_string(), frames.to_string()),
        (
            "producer".to_string(),
            format!("pipeline {}", env!("CARGO_PKG_VERSION")),
        ),
    ]);
    writer.finish(&metadata)?;
    Ok(Extracted {
        frames,
        seconds: run.seconds,
    })
}

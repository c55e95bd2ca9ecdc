//! `pipeline extract`: per-frame features of videos, one safetensors file per video.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};

use super::{describe_decode, prepare, video_features};
use crate::cli::ExtractArgs;
use crate::output::{FeatureWriter, mirrored_path};
use crate::{Failures, inputs};

pub fn run(args: &ExtractArgs) -> Result<Failures> {
    let (options, files, backbone) =
        prepare(&args.inputs, &args.sampling, &args.model, inputs::is_video)?;
    let mut failures = Failures::default();
    for file in &files {
        let out = mirrored_path(&args.out, &file.relative, "safetensors");
        let result = (|| -> Result<()> {
            let mut writer = FeatureWriter::create(&out, vision::FEATURE_DIM)?;
            let run = video_features(
                &file.path,
                &options,
                &backbone,
                args.model.batch as usize,
                |b| writer.push(&b.host_features()?, &b.timestamps),
            )?;
            let frames = writer.len();
            let metadata = BTreeMap::from([
                ("source".to_string(), file.path.display().to_string()),
                ("backbone".to_string(), backbone.variant_name().to_string()),
                ("weights".to_string(), backbone.weights.clone()),
                (
                    "precision".to_string(),
                    args.model.precision.name().to_string(),
                ),
                ("sampling".to_string(), options.sampling.describe()),
                ("input_size".to_string(), format!("{0}x{0}", options.size)),
                (
                    "frame_size".to_string(),
                    format!("{}x{}", run.info.width, run.info.height),
                ),
                ("rotation".to_string(), run.info.rotation.to_string()),
                ("codec".to_string(), run.info.codec.clone()),
                ("decoder_warnings".to_string(), describe_decode(&run.decode)),
                ("frames".to_string(), frames.to_string()),
                (
                    "producer".to_string(),
                    format!("pipeline {}", env!("CARGO_PKG_VERSION")),
                ),
            ]);
            writer.finish(&metadata)?;
            tracing::info!(
                "{} -> {}: {frames} frames in {:.1} s ({:.1} frames/s)",
                file.path.display(),
                out.display(),
                run.seconds,
                frames as f64 / run.seconds.max(1e-9)
            );
            Ok(())
        })()
        .with_context(|| file.path.display().to_string());
        failures.record(result);
    }
    Ok(failures)
}

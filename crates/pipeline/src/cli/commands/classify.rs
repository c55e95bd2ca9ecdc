//! `pipeline classify`: ImageNet top-K for images and for the sampled frames of videos.

use std::io::Write;

use anyhow::Result;
use pipeline::features::video_features;
use pipeline::imagenet::{Classified, Scored, load_image, top_k};
use pipeline::inputs;

use super::prepare;
use crate::cli::ClassifyArgs;
use crate::cli::exit::{Classify as _, Failures, Outcome};

pub fn run(args: &ClassifyArgs) -> Outcome {
    let (mut options, files, backbone) = prepare(
        &args.inputs,
        &args.sampling,
        &args.model,
        |p| inputs::is_video(p) || inputs::is_image(p),
        false,
    )
    .usage()?;
    // ImageNet classes need no motion: none is measured.
    options.motion = media::MotionSource::Off;
    let k = args.top as usize;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failures = Failures::default();
    for file in &files {
        let source = file.path.display().to_string();
        let mut emit = |timestamp: Option<f64>, top: Vec<Scored>| -> Result<()> {
            let record = Classified {
                source: &source,
                timestamp,
                top,
            };
            if args.json {
                serde_json::to_writer(&mut out, &record)?;
                writeln!(out)?;
            } else {
                writeln!(out, "{}", record.text_line())?;
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
            video_features(&file.path, &options, &backbone, backbone.batch(), |b| {
                let tops = top_k(backbone.classify(b.features), k)?;
                for (t, top) in b.timestamps.into_iter().zip(tops) {
                    emit(Some(t), top)?;
                }
                Ok(())
            })
            .map(|_| ())
        };
        let flushed = out.flush().map_err(anyhow::Error::from);
        failures.record(
            result
                .and(flushed)
                .map_err(|e| inputs::about(&file.path, e)),
        );
    }
    failures.done()
}

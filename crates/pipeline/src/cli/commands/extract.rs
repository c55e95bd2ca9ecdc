//! `pipeline extract`: per-frame features of videos, one safetensors file per video; of a
//! live source, one per segment.

use std::path::PathBuf;

use anyhow::anyhow;
use media::Source;
use pipeline::output::mirrored_path;

use super::prepare;
use crate::cli::ExtractArgs;
use crate::cli::exit::{Classify as _, Failures, Fatal, Outcome};

pub fn run(args: &ExtractArgs) -> Outcome {
    // Files and directories, and sources that are not files (URLs, standard input, devices).
    let (files, streams): (Vec<Source>, Vec<Source>) = args
        .inputs
        .iter()
        .map(|input| args.source.source(input))
        .partition(|s| s.path().is_some() && s.format().is_none() && !s.is_realtime());
    let paths: Vec<PathBuf> = files
        .iter()
        .filter_map(|s| s.path().map(PathBuf::from))
        .collect();
    let (mut options, files, backbone) = prepare(
        &paths,
        &args.sampling,
        &args.model,
        pipeline::inputs::is_video,
        !streams.is_empty(),
    )
    .usage()?;
    let stop = crate::cli::interrupt::install().runtime()?;
    options.read = args.source.read(std::sync::Arc::clone(&stop));
    // Temporary files of runs on this machine that were killed; never another machine's.
    pipeline::output::remove_stale_temp_files(&args.out);
    let mut failures = Failures::default();
    for file in &files {
        let out = mirrored_path(&args.out, &file.relative, "safetensors");
        let result = pipeline::extract::extract_video(&file.path, &out, &options, &backbone)
            .map(|done| {
                tracing::info!(
                    "{} -> {}: {} frames in {:.1} s ({:.1} frames/s)",
                    file.path.display(),
                    out.display(),
                    done.frames,
                    done.seconds,
                    done.frames as f64 / done.seconds.max(1e-9)
                );
            })
            .map_err(|e| pipeline::inputs::about(&file.path, e));
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            // The file was cut short: its output was abandoned.
            return Err(Fatal::interrupted(anyhow!(
                "{}: interrupted before its end; nothing written for it",
                file.path.display()
            )));
        }
        failures.record(result);
    }
    // One at a time: a live source ends when it stops (or is stopped).
    for source in &streams {
        let result =
            pipeline::extract::extract_stream(source, &args.out, args.segment, &options, &backbone);
        if stop.load(std::sync::atomic::Ordering::Relaxed) && result.is_err() {
            return Err(Fatal::interrupted(anyhow!(
                "{}: interrupted before its end; nothing written for it",
                source.name()
            )));
        }
        let result = result.map(|written| {
            let frames: usize = written.iter().map(|(_, n)| n).sum();
            tracing::info!(
                "{} -> {} file(s) in {}: {frames} frames",
                source.name(),
                written.len(),
                args.out.display()
            );
        });
        failures.record(result);
    }
    failures.done()
}

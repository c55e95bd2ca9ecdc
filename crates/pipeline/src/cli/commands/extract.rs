//! `pipeline extract`: per-frame features of videos, one safetensors file per video.

use pipeline::output::mirrored_path;

use super::prepare;
use crate::cli::ExtractArgs;
use crate::cli::exit::{Classify as _, Failures, Outcome};

pub fn run(args: &ExtractArgs) -> Outcome {
    let (options, files, backbone) = prepare(
        &args.inputs,
        &args.sampling,
        &args.model,
        pipeline::inputs::is_video,
    )
    .usage()?;
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
        failures.record(result);
    }
    failures.done()
}

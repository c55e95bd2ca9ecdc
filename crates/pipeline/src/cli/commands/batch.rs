//! `pipeline batch`: `run` over many files, resumable and shardable.

use pipeline::batch::{BatchError, BatchSettings};

use crate::cli::BatchArgs;
use crate::cli::exit::{Done, Fatal, Outcome};
use crate::cli::progress::error_line;

pub fn run(args: &BatchArgs) -> Outcome {
    let settings = BatchSettings {
        inputs: args.inputs.clone(),
        out: args.out.clone(),
        format: args.format.into(),
        jobs: args.jobs as usize,
        shard: args.shard,
        force: args.force,
        analysis: args.analysis.settings(),
    };
    let summary = pipeline::batch::run(&settings, &error_line).map_err(|e| match e {
        BatchError::Setup(e) => Fatal::usage(e),
        BatchError::Runtime(e) => Fatal::runtime(e),
    })?;
    eprintln!(
        "{} inputs: {} done, {} already done, {} failed; {} frames in {:.1} s ({:.1} frames/s){}",
        summary.inputs,
        summary.done,
        summary.skipped,
        summary.failed,
        summary.frames,
        summary.wall_seconds,
        summary.frames_per_second,
        summary
            .errors
            .as_ref()
            .map_or(String::new(), |e| format!("; see {}", e.display()))
    );
    Ok(Done {
        failed: summary.failed,
    })
}

//! `pipeline make-clips`: the synthetic labelled clip set.

use crate::cli::MakeClipsArgs;
use crate::cli::exit::{Classify as _, Done, Outcome};

pub fn run(args: &MakeClipsArgs) -> Outcome {
    let paths =
        pipeline::synth::write_clip_set(&args.out, args.per_class as usize, args.seed).runtime()?;
    println!("wrote {} clips to {}", paths.len(), args.out.display());
    Ok(Done::ALL)
}

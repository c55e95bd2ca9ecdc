//! `pipeline make-clips`: the synthetic labelled clip set, or camera-motion clips cut from the
//! user's videos.

use crate::cli::exit::{Classify as _, Done, Outcome};
use crate::cli::{ClipKind, MakeClipsArgs};

pub fn run(args: &MakeClipsArgs) -> Outcome {
    let paths = match args.kind {
        ClipKind::Shapes => {
            if !args.from.is_empty() {
                return Err(anyhow::anyhow!("--from is for --kind camera")).usage();
            }
            let per_class = args.per_class.unwrap_or(128) as usize;
            pipeline::synth::write_clip_set(&args.out, per_class, args.seed).runtime()?
        }
        ClipKind::Camera => {
            if args.from.is_empty() {
                return Err(anyhow::anyhow!(
                    "--kind camera needs at least one --from VIDEO"
                ))
                .usage();
            }
            let per_class = args.per_class.unwrap_or(24) as usize;
            pipeline::synth::camera::write_camera_clips(&args.out, &args.from, per_class, args.seed)
                .runtime()?
        }
    };
    println!("wrote {} clips to {}", paths.len(), args.out.display());
    Ok(Done::ALL)
}

//! `pipeline bench`: frames/s of each stage alone and end to end.

use pipeline::bench::BenchSettings;

use crate::cli::BenchArgs;
use crate::cli::exit::{Classify as _, Done, Outcome};

pub fn run(args: &BenchArgs) -> Outcome {
    let settings = BenchSettings {
        input: args.input.clone(),
        stages: args.stage.iter().map(|&s| s.into()).collect(),
        repeats: args.repeats,
        head: args.head.clone(),
        sampling: args.sampling.settings(),
        backbone: args.model.settings(),
    };
    let mut out = std::io::stdout().lock();
    pipeline::bench::run(&settings, &mut out).usage()?;
    Ok(Done::ALL)
}

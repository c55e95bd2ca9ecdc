//! `pipeline eval`: a trained model's scores on labelled clips, beside its baseline.

use pipeline::evaluate::{EvalSettings, evaluate, tables};

use crate::cli::EvalArgs;
use crate::cli::exit::{Classify as _, Done, Outcome};

pub fn run(args: &EvalArgs) -> Outcome {
    let settings = EvalSettings {
        model: args.model.clone(),
        data: args.data.settings(),
        split: args.split.map(Into::into),
    };
    let done = evaluate(&settings).usage()?;
    if args.json {
        let json = serde_json::to_string(&done.scores).map_err(anyhow::Error::from);
        println!("{}", json.runtime()?);
    } else {
        print!("{}", tables(&done.scores, &done.card));
        if done.skipped > 0 {
            println!("{} clip(s) skipped (see the warnings above)", done.skipped);
        }
    }
    // Skipped clips were warned about and counted; they do not fail the evaluation.
    Ok(Done::ALL)
}

//! `pipeline train`: a recurrent head trained on labelled clips, and its model folder.

use pipeline::evaluate::tables;
use pipeline::train::{TrainSettings, fusion_line, train};

use crate::cli::TrainArgs;
use crate::cli::exit::{Classify as _, Done, Outcome};

pub fn run(args: &TrainArgs) -> Outcome {
    let settings = TrainSettings {
        data: args.data.settings(),
        task: args.task.into(),
        out: args.out.clone(),
        cell: args.cell.into(),
        hidden: args.hidden,
        layers: args.layers,
        activation: args.activation.into(),
        dropout: args.dropout,
        projection_dropout: args.projection_dropout,
        epochs: args.epochs,
        patience: args.patience,
        lr: args.lr,
        schedule: args.schedule.into(),
        selection: args.selection.map(Into::into),
        normalization: args.normalization.map(Into::into),
        weight_decay: args.weight_decay,
        adam_epsilon: args.adam_epsilon,
        batch: args.batch,
        clip_len: args.clip_len,
        horizon: args.horizon,
        val_fraction: args.val_fraction,
        test_fraction: args.test_fraction,
        group_by: args.group_by.clone(),
        seed: args.seed,
        resume: args.resume,
        sampling: args.sampling.settings(),
        inputs: pipeline::streams::Streams::parse(&args.inputs).usage()?,
        fusion: args.fusion.map(Into::into),
    };
    let trained = train(&settings).usage()?;
    match (&trained.fusion, trained.best_epoch) {
        (Some(fusion), _) => println!(
            "trained a head per stream, {} epoch(s) in all, in {:.1} s; fused late: {}",
            trained.epochs,
            trained.seconds,
            fusion_line(fusion)
        ),
        (None, Some(best)) => println!(
            "trained {} epoch(s) in {:.1} s ({:.0} sequences/s); kept epoch {best} of {}",
            trained.epochs, trained.seconds, trained.sequences_per_second, trained.epochs_total
        ),
        (None, None) => println!(
            "trained {} epoch(s) in {:.1} s ({:.0} sequences/s)",
            trained.epochs, trained.seconds, trained.sequences_per_second
        ),
    }
    print!("{}", tables(&trained.val, &trained.card));
    match &trained.test {
        Some(test) => {
            println!();
            print!("{}", tables(test, &trained.card));
        }
        None => println!(
            "no test split: the scores above are validation scores{}; once they guide a choice of settings they flatter the model. Hold out a test split (ROOT/test/, a manifest's test rows or --test-fraction) and report that",
            if trained
                .card
                .recipe
                .as_ref()
                .is_some_and(|r| r.selection == temporal::train::Selection::Best)
            {
                ", on the clips that chose the kept epoch"
            } else {
                ""
            }
        ),
    }
    println!("model: {}", args.out.display());
    if trained.skipped > 0 {
        println!(
            "{} clip(s) skipped (see the warnings above)",
            trained.skipped
        );
    }
    Ok(Done::ALL)
}

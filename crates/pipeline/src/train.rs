//! Training a head: features of labelled clips (cached), a recurrent head trained on them, and
//! a model folder with everything needed to use and judge it. What `pipeline train` does.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use burn::prelude::*;
use serde::Serialize;
use temporal::train::{EpochStats, Normalization, Schedule, Selection, TrainEvent, TrainOptions};
use temporal::{Activation, CellKind, Head, TemporalConfig};

use crate::backbone::Backbone;
use crate::data::sequences::{self, Loaded, Skipped};
use crate::data::{DataSettings, Dataset, Layout, Purpose, Split, SplitPlan};
use crate::evaluate::{Scores, score};
use crate::model_dir::{
    self, BackboneCard, BranchCard, FusionCard, HeadModel, ModelCard, Recipe, Resumable,
    SamplingCard, Task, WeighedOn,
};
use crate::output::write_json;
use crate::plot;
use crate::progress::{self, BarSpec, Unit};
use crate::sampling::SamplingSettings;
use crate::streams::{Stream, Streams};
use temporal::TemporalModel;

/// What to train, on what, and how. See `pipeline train --help` for each field.
#[derive(Debug, Clone)]
pub struct TrainSettings {
    pub data: DataSettings,
    pub task: Task,
    /// The model folder to write.
    pub out: PathBuf,
    pub cell: CellKind,
    pub hidden: u32,
    pub layers: u32,
    pub activation: Activation,
    pub dropout: f64,
    pub projection_dropout: bool,
    pub epochs: u32,
    pub patience: u32,
    pub lr: f64,
    pub schedule: Schedule,
    /// `None`: [`default_selection`] of the task.
    pub selection: Option<Selection>,
    /// `None`: [`default_normalization`] of the task.
    pub normalization: Option<Normalization>,
    pub weight_decay: f64,
    pub adam_epsilon: f64,
    pub batch: u32,
    pub clip_len: u32,
    /// anticipate / forecast: seconds ahead.
    pub horizon: f64,
    pub val_fraction: f64,
    pub test_fraction: f64,
    /// Names each clip's group (source footage) from its file name; see [`SplitPlan`].
    pub group_by: Option<String>,
    pub seed: u64,
    /// Carry on from the last checkpoint in `out`.
    pub resume: bool,
    pub sampling: SamplingSettings,
    /// The streams the head reads.
    pub inputs: Streams,
    /// How several streams are combined; `None`: [`default_fusion`].
    pub fusion: Option<Fusion>,
}

/// How a head reading several streams combines them (`train --fusion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fusion {
    /// One head on the streams laid side by side.
    Early,
    /// A head per stream, their class probabilities combined with weights fitted on clips
    /// none of them trained on (`temporal::fusion`).
    Late,
}

/// `--fusion` when not given: late for classify and anticipate heads reading several streams,
/// early otherwise (one stream has nothing to fuse; a forecast's target is the whole step).
/// On camera-motion clips from videos training never saw, a head on features and motion side
/// by side fit the training videos' appearance and scored at chance, where the motion stream
/// alone scored 0.95 (README, "Motion as an input").
pub fn default_fusion(task: Task, inputs: &Streams) -> Fusion {
    if task != Task::Forecast && inputs.list().len() > 1 {
        Fusion::Late
    } else {
        Fusion::Early
    }
}

/// The fusion `args` ask for, checked against the task and the streams.
fn fusion(args: &TrainSettings) -> Result<Fusion> {
    let fusion = args
        .fusion
        .unwrap_or_else(|| default_fusion(args.task, &args.inputs));
    if fusion == Fusion::Late {
        if args.task == Task::Forecast {
            bail!(
                "--fusion late: a forecast head predicts the whole step, so it reads its streams side by side; use --fusion early"
            );
        }
        if args.inputs.list().len() < 2 {
            bail!(
                "--fusion late needs several streams (--inputs features,motion); --inputs {} is one",
                args.inputs.name()
            );
        }
    }
    Ok(fusion)
}

/// What a finished training reports.
#[derive(Debug)]
pub struct Trained {
    pub card: ModelCard,
    /// The kept model on the validation split (which chose the kept epoch under
    /// `Selection::Best`), or on the training split when there is no validation split.
    pub val: Scores,
    /// The kept model on the test split, scored once here and never used for a choice.
    pub test: Option<Scores>,
    /// Epochs trained by this run (not counting those resumed from).
    pub epochs: usize,
    pub epochs_total: usize,
    /// The kept epoch; `None` for a head fused late (each branch kept its own).
    pub best_epoch: Option<usize>,
    pub seconds: f64,
    pub sequences_per_second: f64,
    /// Clips skipped (each was warned about).
    pub skipped: usize,
    /// Late fusion: each stream's head and its weight, and how the weights were chosen.
    pub fusion: Option<FusionReport>,
}

/// `metrics.json`.
#[derive(Debug, Serialize)]
struct Metrics<'a> {
    task: Task,
    cell: String,
    /// Per epoch; a head fused late has none of its own (each branch's folder has them).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    epochs: &'a [EpochStats],
    #[serde(skip_serializing_if = "Option::is_none")]
    best_epoch: Option<usize>,
    resumed_from: usize,
    stopped_early: bool,
    train_seconds: f64,
    train_sequences_per_second: f64,
    data: DataSummary<'a>,
    /// Scores of the kept model on the validation split, or on the training split when there is
    /// none (`split` says which).
    validation: &'a Scores,
    /// Scores of the kept model on the test split, which chose nothing; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    test: Option<&'a Scores>,
    /// Late fusion: each stream's head alone and the weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    fusion: Option<&'a FusionReport>,
}

/// How a head fused late was put together: `metrics.json`'s `fusion`.
#[derive(Debug, Clone, Serialize)]
pub struct FusionReport {
    /// What the weights were fitted on.
    pub chosen_on: String,
    /// The fused heads' loss on those clips.
    pub held_out_loss: f64,
    pub branches: Vec<BranchReport>,
}

/// One stream's head of a late fusion.
#[derive(Debug, Clone, Serialize)]
pub struct BranchReport {
    pub stream: &'static str,
    pub weight: f64,
    /// The head alone on the clips that chose the weights.
    pub held_out_loss: f64,
    pub held_out_accuracy: Option<f64>,
    /// The head alone on the validation (or training) and test splits, as the fused head is
    /// scored.
    pub validation: Scores,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Scores>,
}

#[derive(Debug, Serialize)]
struct DataSummary<'a> {
    layout: Layout,
    train_sequences: usize,
    val_sequences: usize,
    test_sequences: usize,
    skipped: &'a [Skipped],
}

/// One line of `clips.jsonl`: which clip went where, and the cached features it gave.
#[derive(Debug, Serialize)]
struct ClipLine<'a> {
    #[serde(serialize_with = "crate::inputs::serialize_lossy")]
    path: &'a Path,
    label: Option<&'a str>,
    split: Split,
    segment: Option<(f64, f64)>,
    steps: usize,
    #[serde(serialize_with = "crate::inputs::serialize_lossy")]
    features: &'a Path,
}

/// Trains a head as `args` say and writes its model folder.
pub fn train(args: &TrainSettings) -> Result<Trained> {
    let out = &args.out;
    check_numbers(args)?;
    let fusion = fusion(args)?;
    let selection = args
        .selection
        .unwrap_or_else(|| default_selection(args.task));
    let train_options = TrainOptions {
        epochs: args.epochs as usize,
        batch: args.batch as usize,
        lr: args.lr,
        schedule: args.schedule,
        selection,
        normalization: args
            .normalization
            .unwrap_or_else(|| default_normalization(args.task)),
        weight_decay: args.weight_decay as f32,
        epsilon: args.adam_epsilon as f32,
        patience: match selection {
            Selection::Best => args.patience as usize,
            Selection::Last => usize::MAX,
        },
        seed: args.seed,
        checkpoint: Some(out.join(model_dir::CHECKPOINT)),
        ..TrainOptions::default()
    };
    let recipe = Recipe {
        epochs: train_options.epochs,
        batch: train_options.batch,
        lr: train_options.lr,
        schedule: train_options.schedule,
        selection: train_options.selection,
        normalization: train_options.normalization,
        patience: (train_options.selection == Selection::Best).then_some(train_options.patience),
        weight_decay: args.weight_decay,
        adam_epsilon: args.adam_epsilon,
        clip_norm: f64::from(train_options.clip_norm),
    };
    // A model, or a checkpoint, here or in a stream's subfolder (late fusion).
    let trained_before = std::iter::once(out.clone())
        .chain(args.inputs.list().iter().map(|s| out.join(s.name())))
        .any(|dir| {
            dir.join(temporal::store::WEIGHTS_FILE).exists()
                || std::fs::read_dir(dir.join(model_dir::CHECKPOINT)).is_ok_and(|mut d| {
                    d.any(|e| {
                        e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("epoch-"))
                    })
                })
        });
    if !args.resume && trained_before {
        bail!(
            "{} already holds a model; pass --resume to carry on an interrupted run, or choose another --out",
            out.display()
        );
    }
    let plan = SplitPlan {
        val_fraction: args.val_fraction,
        test_fraction: args.test_fraction,
        seed: args.seed,
        group_by: args.group_by.clone(),
    };
    args.sampling.options()?;
    let dataset = crate::data::discover(
        &args.data.data,
        args.task != Task::Forecast,
        &plan,
        Purpose::Training,
    )?;
    let (mut sampling, chosen) = choose_sampling(args, &dataset);
    sampling.motion = args.inputs.motion(sampling.motion, sampling.keyframes)?;
    if let Some(why) = &chosen {
        tracing::info!("sampling: {why}");
    }
    let sampling_card = SamplingCard {
        chosen,
        ..SamplingCard::from_settings(&sampling)
    };
    let options = sampling.options()?;
    let model_args = args.data.backbone();
    let selected = crate::device::select(model_args.device)?;
    tracing::info!("CNN device: {}", selected.description);
    let backbone = Backbone::load(&model_args, options.size, &selected.device)?;
    if args.resume {
        match ModelCard::read(out) {
            Ok(saved) => saved.check_resume(
                args.task,
                &dataset.classes,
                &sampling_card,
                &backbone.fingerprint,
                &Resumable {
                    data: std::fs::canonicalize(&args.data.data)
                        .unwrap_or_else(|_| args.data.data.clone()),
                    split: plan.clone(),
                    clip_len: args.clip_len as usize,
                    recipe: recipe.clone(),
                    // The head's own size follows from the data; the rest must match.
                    model: TemporalConfig::new(args.cell, saved.model.head.clone())
                        .with_input_dim(args.inputs.dim())
                        .with_hidden(args.hidden as usize)
                        .with_layers(args.layers as usize)
                        .with_activation(args.activation)
                        .with_dropout(args.dropout)
                        .with_projection_dropout(args.projection_dropout),
                },
            )?,
            Err(_) => tracing::warn!("--resume: nothing to resume in {}, starting", out.display()),
        }
        // A late fusion interrupted before its weights were fitted has stream folders, and no
        // `fusion` in its card yet.
        let saved_late = ModelCard::read(out).is_ok_and(|c| c.fusion.is_some())
            || args
                .inputs
                .list()
                .iter()
                .any(|s| out.join(s.name()).join(model_dir::CARD).is_file());
        if out.join(model_dir::CARD).is_file() && saved_late != (fusion == Fusion::Late) {
            bail!(
                "--resume: the interrupted run used --fusion {}; resume with the same",
                if saved_late { "late" } else { "early" }
            );
        }
    }
    let cache = args.data.feature_cache()?;
    let units = sequences::units(&dataset, args.task, |l| {
        dataset.classes.iter().position(|c| c == l)
    });
    let (loaded, skipped) = sequences::load(
        units,
        &cache,
        &options,
        &args.inputs,
        &backbone,
        model_args.batch as usize,
    );
    if !loaded.iter().any(|l| l.unit.split == Split::Train) {
        bail!(
            "no usable training clip in {} ({} skipped{})",
            args.data.data.display(),
            skipped.len(),
            skipped
                .first()
                .map(|s| format!("; first: {}: {}", s.path.display(), s.reason))
                .unwrap_or_default()
        );
    }

    let step_seconds = sequences::step_seconds(&loaded)
        .or(sampling.fps.map(|f| 1.0 / f))
        .unwrap_or(1.0);
    let horizon_steps = match args.task {
        Task::Classify => 0,
        _ => ((args.horizon / step_seconds).round() as usize).max(1),
    };
    if horizon_steps >= args.clip_len as usize {
        bail!(
            "--horizon {} s is {horizon_steps} steps of {step_seconds:.3} s: it must be shorter than --clip-len ({} steps), the windows the head trains on",
            args.horizon,
            args.clip_len
        );
    }
    let classes = dataset.classes.len();
    let head = match args.task {
        Task::Classify => Head::Classify { classes },
        Task::Anticipate => Head::Anticipate {
            classes,
            horizon: horizon_steps,
        },
        Task::Forecast => Head::Forecast {
            ahead: horizon_steps,
        },
    };
    let config = TemporalConfig::new(args.cell, head)
        .with_input_dim(args.inputs.dim())
        .with_hidden(args.hidden as usize)
        .with_layers(args.layers as usize)
        .with_activation(args.activation)
        .with_dropout(args.dropout)
        .with_projection_dropout(args.projection_dropout);
    let mut card = ModelCard {
        version: model_dir::FORMAT_VERSION,
        model: config.clone(),
        classes: dataset.classes.clone(),
        backbone: BackboneCard {
            name: backbone.variant_name().to_string(),
            weights: backbone.weights.clone(),
            fingerprint: backbone.fingerprint.clone(),
            feature_dim: vision::FEATURE_DIM,
        },
        sampling: sampling_card,
        inputs: args.inputs.clone(),
        motion_layout: args
            .inputs
            .needs_motion()
            .then_some(media::motion::LAYOUT_VERSION),
        motion_source: match sampling.motion {
            media::MotionSource::Off => None,
            media::MotionSource::Auto => Some("auto".into()),
            media::MotionSource::Estimated => Some("estimated".into()),
        },
        clip_len: args.clip_len as usize,
        step_seconds,
        horizon_seconds: (args.task != Task::Classify).then_some(args.horizon),
        horizon_steps,
        data: std::fs::canonicalize(&args.data.data).unwrap_or_else(|_| args.data.data.clone()),
        split: plan,
        recipe: Some(recipe.clone()),
        normalization: match train_options.normalization {
            Normalization::PerFeature => "per-feature mean and standard deviation of the training features",
            Normalization::Global => "one mean and one standard deviation over all training features, repeated per feature",
            Normalization::None => "none (mean 0, standard deviation 1)",
        }
        .to_string()
            + ", tensors `mean` and `std` in model.safetensors",
        producer: format!("pipeline {}", env!("CARGO_PKG_VERSION")),
        fusion: None,
    };
    card.write(out)?;
    write_clip_list(&out.join("clips.jsonl"), &loaded)?;

    let sets = Sets {
        train: sequences::sequences(&loaded, Some(Split::Train), card.clip_len, horizon_steps),
        val: sequences::sequences(&loaded, Some(Split::Val), card.clip_len, horizon_steps),
        test: sequences::sequences(&loaded, Some(Split::Test), card.clip_len, horizon_steps),
    };
    if sets.test.is_empty() {
        tracing::warn!(
            "no test split: the scores reported are validation scores, which flatter the model once they guide a choice; hold clips out with ROOT/test/, a manifest's test rows or --test-fraction"
        );
    }
    tracing::info!(
        "training {} head ({:?}, hidden {}, {} layer(s){}) on {} sequences, validating on {}, testing on {}; steps {:.3} s apart{}",
        args.task.name(),
        args.cell,
        args.hidden,
        args.layers,
        if fusion == Fusion::Late {
            format!(", one per stream of {}, fused late", args.inputs.name())
        } else {
            String::new()
        },
        sets.train.len(),
        sets.val.len(),
        sets.test.len(),
        step_seconds,
        if horizon_steps > 0 {
            format!(", horizon {} steps", horizon_steps)
        } else {
            String::new()
        }
    );
    // The heads are small: they train on the CPU, where the same seed gives the same model.
    let device = Device::flex();
    let report = Report {
        layout: dataset.layout,
        skipped: &skipped,
    };
    let started = Instant::now();
    if fusion == Fusion::Early {
        let head = train_head(
            args,
            &card,
            out,
            &sets,
            &train_options,
            None,
            &device,
            &report,
        )?;
        return Ok(Trained {
            card,
            val: head.val,
            test: head.test,
            epochs: head.epochs,
            epochs_total: head.epochs_total,
            best_epoch: Some(head.best_epoch),
            seconds: head.seconds,
            sequences_per_second: head.sequences_per_second,
            skipped: skipped.len(),
            fusion: None,
        });
    }

    // Late fusion: a head per stream, each a model folder of its own under `out`.
    let dim = args.inputs.dim();
    let mut branches = Vec::new();
    // Epochs of the heads kept, and sequence-epochs of every training (folds included).
    let (mut epochs, mut work) = (0, 0);
    for (stream, columns) in args.inputs.columns() {
        let branch_card = branch_card(&card, stream);
        let dir = out.join(stream.name());
        branch_card.write(&dir)?;
        let options = TrainOptions {
            checkpoint: Some(dir.join(model_dir::CHECKPOINT)),
            ..train_options.clone()
        };
        let head = train_head(
            args,
            &branch_card,
            &dir,
            &sets.columns(dim, &columns),
            &options,
            Some(stream.name()),
            &device,
            &report,
        )?;
        epochs += head.epochs;
        work += head.epochs * sets.train.len();
        branches.push((stream, columns, head));
    }
    let held_out = held_out_scores(
        args,
        &train_options,
        &loaded,
        (card.clip_len, horizon_steps),
        &sets,
        &branches,
        &device,
    )?;
    work += held_out.work;
    let (weights, held_out_loss) = match &held_out.scored {
        Some(scored) => temporal::fusion::fit_weights(scored)?,
        None => {
            tracing::warn!(
                "late fusion: no clips to fit the weights on (no validation split, and fewer than two training groups that train a head); each stream's head weighs 1"
            );
            (vec![1.0; branches.len()], f64::NAN)
        }
    };
    let chosen_on = held_out.description.clone();
    let fused = temporal::fusion::LateFusion::new(
        branches
            .iter()
            .zip(&weights)
            .map(|((_, columns, head), &weight)| temporal::fusion::Branch {
                columns: columns.clone(),
                model: head.model.clone(),
                weight,
            })
            .collect(),
    )?;
    card.fusion = Some(FusionCard {
        branches: branches
            .iter()
            .zip(&weights)
            .map(|((stream, _, _), &weight)| BranchCard {
                stream: *stream,
                dir: stream.name().to_string(),
                weight,
            })
            .collect(),
        weighed_on: held_out.on,
        chosen: format!("the log-loss of the fused heads on {chosen_on}"),
    });
    let fusion_report = FusionReport {
        chosen_on,
        held_out_loss,
        branches: branches
            .iter()
            .zip(&weights)
            .enumerate()
            .map(|(i, ((stream, _, head), &weight))| {
                let alone = held_out
                    .scored
                    .as_ref()
                    .map(|scored| scored[i].evaluation());
                BranchReport {
                    stream: stream.name(),
                    weight,
                    held_out_loss: alone.as_ref().map_or(f64::NAN, |e| e.loss),
                    held_out_accuracy: alone.as_ref().and_then(|e| e.accuracy()),
                    validation: head.val.clone(),
                    test: head.test.clone(),
                }
            })
            .collect(),
    };
    tracing::info!("late fusion: {}", fusion_line(&fusion_report));
    let model = HeadModel::Late(fused);
    let baseline = train_baseline(args, &config, &sets, out, &device)?;
    let (val, test) = score_splits(&model, baseline.as_ref(), &card, &sets, &device)?;
    let seconds = started.elapsed().as_secs_f64();
    write_json(
        &out.join(model_dir::METRICS),
        &Metrics {
            task: args.task,
            cell: format!("{:?}", args.cell).to_lowercase(),
            epochs: &[],
            best_epoch: None,
            resumed_from: branches.iter().map(|(_, _, h)| h.resumed_from).sum(),
            stopped_early: branches.iter().any(|(_, _, h)| h.stopped_early),
            train_seconds: seconds,
            train_sequences_per_second: work as f64 / seconds.max(1e-9),
            data: report.summary(&sets),
            validation: &val,
            test: test.as_ref(),
            fusion: Some(&fusion_report),
        },
    )?;
    save_confusion(out, &card, test.as_ref().unwrap_or(&val), args.task)?;
    // The card last: with its `fusion` the folder opens as a finished model.
    card.write(out)?;
    Ok(Trained {
        card,
        val,
        test,
        epochs,
        epochs_total: epochs,
        best_epoch: None,
        seconds,
        sequences_per_second: work as f64 / seconds.max(1e-9),
        skipped: skipped.len(),
        fusion: Some(fusion_report),
    })
}

/// One line on a late fusion's weights and each head alone.
pub fn fusion_line(report: &FusionReport) -> String {
    let branches: Vec<String> = report
        .branches
        .iter()
        .map(|b| {
            format!(
                "{} weight {:.1} (alone: loss {:.3}{})",
                b.stream,
                b.weight,
                b.held_out_loss,
                b.held_out_accuracy
                    .map(|a| format!(", accuracy {a:.3}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    format!(
        "{}; fused loss {:.3}, on {}",
        branches.join(", "),
        report.held_out_loss,
        report.chosen_on
    )
}

/// The training, validation and test sequences.
struct Sets {
    train: Vec<temporal::Sequence>,
    val: Vec<temporal::Sequence>,
    test: Vec<temporal::Sequence>,
}

impl Sets {
    /// Each set's `columns` of its `dim`-wide steps.
    fn columns(&self, dim: usize, columns: &std::ops::Range<usize>) -> Self {
        let cut = |set: &[temporal::Sequence]| temporal::fusion::columns(set, dim, columns.clone());
        Self {
            train: cut(&self.train),
            val: cut(&self.val),
            test: cut(&self.test),
        }
    }
}

/// What every `metrics.json` of a training run says of the data.
struct Report<'a> {
    layout: Layout,
    skipped: &'a [Skipped],
}

impl Report<'_> {
    fn summary(&self, sets: &Sets) -> DataSummary<'_> {
        DataSummary {
            layout: self.layout,
            train_sequences: sets.train.len(),
            val_sequences: sets.val.len(),
            test_sequences: sets.test.len(),
            skipped: self.skipped,
        }
    }
}

/// One head trained and written to `dir`.
struct HeadRun {
    model: TemporalModel,
    val: Scores,
    test: Option<Scores>,
    epochs: usize,
    epochs_total: usize,
    best_epoch: usize,
    resumed_from: usize,
    stopped_early: bool,
    seconds: f64,
    sequences_per_second: f64,
}

/// Trains the head `card` describes on `sets` and writes its model folder `dir`: weights,
/// baseline, `metrics.json`, `curves.png`, `confusion.png`. `name` tells a late fusion's
/// branches apart in progress and logs.
#[allow(clippy::too_many_arguments)]
fn train_head(
    args: &TrainSettings,
    card: &ModelCard,
    dir: &Path,
    sets: &Sets,
    options: &TrainOptions,
    name: Option<&str>,
    device: &Device,
    report: &Report,
) -> Result<HeadRun> {
    let started = Instant::now();
    let trained = fit(
        &card.model,
        &sets.train,
        &sets.val,
        options,
        name,
        true,
        device,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let epochs = trained.history.len() - trained.resumed_from;
    let sequences_per_second = (epochs * sets.train.len()) as f64 / seconds.max(1e-9);
    temporal::store::save(&trained.model, dir)?;
    let baseline = train_baseline(args, &card.model, sets, dir, device)?;
    let stopped_early = trained.history.len() < args.epochs as usize;
    let model = HeadModel::Single(Box::new(trained.model));
    let (val, test) = score_splits(&model, baseline.as_ref(), card, sets, device)?;
    write_json(
        &dir.join(model_dir::METRICS),
        &Metrics {
            task: args.task,
            cell: format!("{:?}", args.cell).to_lowercase(),
            epochs: &trained.history,
            best_epoch: Some(trained.best_epoch),
            resumed_from: trained.resumed_from,
            stopped_early,
            train_seconds: seconds,
            train_sequences_per_second: sequences_per_second,
            data: report.summary(sets),
            validation: &val,
            test: test.as_ref(),
            fusion: None,
        },
    )?;
    plot_curves(
        &dir.join(model_dir::CURVES),
        &trained.history,
        trained.best_epoch,
        args.task,
    )?;
    save_confusion(dir, card, test.as_ref().unwrap_or(&val), args.task)?;
    let HeadModel::Single(model) = model else {
        unreachable!("built as one head above")
    };
    Ok(HeadRun {
        model: *model,
        val,
        test,
        epochs,
        epochs_total: trained.history.len(),
        best_epoch: trained.best_epoch,
        resumed_from: trained.resumed_from,
        stopped_early,
        seconds,
        sequences_per_second,
    })
}

/// Trains one model, with a progress bar; `log` puts each epoch's line in the log at `info`
/// (else `debug`: the cross-validation folds of a late fusion).
fn fit(
    config: &TemporalConfig,
    train: &[temporal::Sequence],
    val: &[temporal::Sequence],
    options: &TrainOptions,
    name: Option<&str>,
    log: bool,
    device: &Device,
) -> Result<temporal::train::Trained> {
    let bar = progress::bar(BarSpec {
        prefix: "epoch".into(),
        total: None,
        unit: Unit::Items,
    });
    let name = name.map(|n| format!("{n} ")).unwrap_or_default();
    let trained = temporal::train::train(config, train, val, options, device, |e| match e {
        TrainEvent::EpochStart { epoch, batches } => {
            bar.set_position(0);
            bar.set_length(batches as u64);
            bar.set_prefix(format!("{name}epoch {epoch}/{}", options.epochs));
        }
        TrainEvent::Batch {
            done,
            loss,
            accuracy,
        } => {
            bar.set_position(done as u64);
            let accuracy = accuracy.map_or(String::new(), |a| format!(" acc {a:.3}"));
            bar.set_message(format!("batches, loss {loss:.4}{accuracy}"));
        }
        TrainEvent::Epoch(s) => progress::suspend(|| {
            if log {
                tracing::info!("{name}{}", epoch_line(s));
            } else {
                tracing::debug!("{name}{}", epoch_line(s));
            }
        }),
    })?;
    drop(bar);
    Ok(trained)
}

/// The order-blind baseline (classify: a linear classifier on the clip's mean feature;
/// anticipate: on the single frame now, no memory, no order), written to `dir`.
fn train_baseline(
    args: &TrainSettings,
    config: &TemporalConfig,
    sets: &Sets,
    dir: &Path,
    device: &Device,
) -> Result<Option<temporal::baseline::MeanPoolBaseline>> {
    let (Head::Classify { classes } | Head::Anticipate { classes, .. }) = config.head else {
        return Ok(None);
    };
    let b = temporal::baseline::train_baseline(
        &sequences::baseline_view(&sets.train, &config.head),
        &sequences::baseline_view(&sets.val, &config.head),
        config.input_dim,
        classes,
        args.seed,
        device,
    )?;
    temporal::store::save_baseline(&b, dir)?;
    Ok(Some(b))
}

/// Scores on the validation split (the training split when there is none: it chose the kept
/// epoch then) and, once, on the test split, after every choice was made.
fn score_splits(
    model: &HeadModel,
    baseline: Option<&temporal::baseline::MeanPoolBaseline>,
    card: &ModelCard,
    sets: &Sets,
    device: &Device,
) -> Result<(Scores, Option<Scores>)> {
    let (chose, split) = if sets.val.is_empty() {
        tracing::warn!("no validation clips: the first scores below are on the training clips");
        (&sets.train, "train")
    } else {
        (&sets.val, "val")
    };
    let val = score(model, baseline, card, chose, split, device)?;
    let test = (!sets.test.is_empty())
        .then(|| score(model, baseline, card, &sets.test, "test", device))
        .transpose()?;
    Ok((val, test))
}

fn save_confusion(dir: &Path, card: &ModelCard, shown: &Scores, task: Task) -> Result<()> {
    if let Some(confusion) = &shown.confusion {
        plot::save_png(
            &plot::confusion_matrix(
                &format!("{} - {} split", task.name(), shown.split),
                &card.classes,
                confusion,
            ),
            &dir.join(model_dir::CONFUSION),
        )?;
    }
    Ok(())
}

/// The card of one stream's head of a late fusion: the fused card's settings, reading that
/// stream alone.
fn branch_card(card: &ModelCard, stream: Stream) -> ModelCard {
    let motion = stream == Stream::Motion;
    ModelCard {
        model: card.model.clone().with_input_dim(stream.dim()),
        inputs: Streams::one(stream),
        motion_layout: card.motion_layout.filter(|_| motion),
        motion_source: card.motion_source.clone().filter(|_| motion),
        fusion: None,
        ..card.clone()
    }
}

/// The most folds [`held_out_scores`] splits the training groups into.
const MAX_FOLDS: usize = 5;

/// What the fusion weights are fitted on.
struct HeldOut {
    /// Each stream's head's scores on the same targets, in stream order; `None`: no clips.
    scored: Option<Vec<temporal::fusion::Scored>>,
    on: WeighedOn,
    description: String,
    /// Sequence-epochs trained for it (the folds).
    work: usize,
}

/// Each stream's head scored on clips it did not train on, to fit the fusion weights on: the
/// validation split when there is one; else out-of-fold predictions on the training split,
/// its groups (source videos) dealt into up to [`MAX_FOLDS`] folds and each fold scored by
/// heads trained on the others (stacking). A fold that gives some head no training target is
/// left out. The folds keep no checkpoint: `--resume` trains them again.
#[allow(clippy::too_many_arguments)]
fn held_out_scores(
    args: &TrainSettings,
    options: &TrainOptions,
    loaded: &[Loaded],
    (clip_len, shift): (usize, usize),
    sets: &Sets,
    branches: &[(Stream, std::ops::Range<usize>, HeadRun)],
    device: &Device,
) -> Result<HeldOut> {
    let dim = args.inputs.dim();
    if !sets.val.is_empty() {
        let scored = branches
            .iter()
            .map(|(_, columns, head)| {
                temporal::fusion::Scored::of(&head.model, columns.clone(), &sets.val, device)
            })
            .collect::<temporal::Result<Vec<_>>>()?;
        return Ok(HeldOut {
            scored: Some(scored),
            on: WeighedOn::Validation,
            description: format!("the validation split ({} sequences)", sets.val.len()),
            work: 0,
        });
    }
    let mut clips_of: std::collections::BTreeMap<&str, usize> = Default::default();
    for l in loaded.iter().filter(|l| l.unit.split == Split::Train) {
        *clips_of.entry(l.unit.group.as_str()).or_default() += 1;
    }
    let none = |description: &str| HeldOut {
        scored: None,
        on: WeighedOn::Equal,
        description: description.to_string(),
        work: 0,
    };
    if clips_of.len() < 2 {
        return Ok(none(
            "nothing (equal weights): one training group, no validation split",
        ));
    }
    if clips_of.values().all(|&n| n == 1) {
        tracing::warn!(
            "late fusion: every training clip is a group of its own, so the folds that weigh the streams may hold clips of footage the heads trained on; if clips were cut from the same videos, name their groups (--group-by, or a manifest's group column), or the weights will trust what does not carry over to new footage"
        );
    }
    let groups: Vec<&str> = clips_of.keys().copied().collect();
    let folds = groups.len().min(MAX_FOLDS);
    let fold_of = |group: &str| groups.iter().position(|g| *g == group).unwrap_or(0) % folds;
    let mut scored: Vec<temporal::fusion::Scored> = Vec::new();
    let (mut held_total, mut used, mut work) = (0, 0, 0);
    for fold in 0..folds {
        let part = |held: bool| {
            sequences::sequences_of(
                loaded,
                |l| l.unit.split == Split::Train && (fold_of(&l.unit.group) == fold) == held,
                clip_len,
                shift,
            )
        };
        let (train, held) = (part(false), part(true));
        if train.is_empty() || held.is_empty() {
            continue;
        }
        tracing::info!(
            "late fusion weights: fold {}/{folds}: each stream's head trained on the other folds' {} sequences, scored on this fold's {}",
            fold + 1,
            train.len(),
            held.len()
        );
        // Every stream's head on this fold, or the fold is left out (the heads' scores must
        // be of the same targets).
        let mut this_fold = Vec::with_capacity(branches.len());
        for (stream, columns, head) in branches {
            let options = TrainOptions {
                checkpoint: None,
                ..options.clone()
            };
            let name = format!("{} fold {}/{folds}", stream.name(), fold + 1);
            let part_train = temporal::fusion::columns(&train, dim, columns.clone());
            let config = head.model.config();
            match fit(
                &config,
                &part_train,
                &[],
                &options,
                Some(&name),
                false,
                device,
            ) {
                Ok(trained) => {
                    work += trained.history.len() * part_train.len();
                    this_fold.push(temporal::fusion::Scored::of(
                        &trained.model,
                        columns.clone(),
                        &held,
                        device,
                    )?);
                }
                Err(e) => {
                    tracing::warn!("late fusion weights: fold {} left out: {e:#}", fold + 1);
                    break;
                }
            }
        }
        if this_fold.len() != branches.len() {
            continue;
        }
        held_total += held.len();
        used += 1;
        if scored.is_empty() {
            scored = this_fold;
        } else {
            for (all, s) in scored.iter_mut().zip(this_fold) {
                all.log_probs.extend(s.log_probs);
                all.labels.extend(s.labels);
            }
        }
    }
    if scored.is_empty() {
        return Ok(HeldOut {
            work,
            ..none("nothing (equal weights): no fold could be trained and scored")
        });
    }
    Ok(HeldOut {
        scored: Some(scored),
        on: WeighedOn::OutOfFold,
        description: format!(
            "out-of-fold predictions on the training split ({held_total} sequences; {} groups in {used} folds, each scored by heads trained on the others)",
            groups.len()
        ),
        work,
    })
}
/// Which epoch `train` keeps when `--select` does not say. classify and anticipate: the last
/// (choosing the best of 60 epochs on ~50 validation clips cost 5 points of test accuracy in
/// the README's ablation). forecast: the best, with early stopping: the forecaster starts at
/// persistence, and the last of 60 epochs on the built-in forecaster's footage was 7% worse
/// than persistence where the best ties it.
pub fn default_selection(task: Task) -> Selection {
    match task {
        Task::Classify | Task::Anticipate => Selection::Last,
        Task::Forecast => Selection::Best,
    }
}

/// How input features are scaled when `--normalize` does not say. classify and anticipate:
/// not at all. Per-feature scaling stretches features that barely vary in training, and
/// footage where they do vary then lands far outside what the head saw: on held-out
/// transition clips it cost 8 points of test accuracy, pooled (global) scaling 3 (see the
/// README's ablation). forecast keeps per-feature scaling: its surprise is an error measured
/// in each feature's own units, and its recipe was not part of that ablation.
pub fn default_normalization(task: Task) -> Normalization {
    match task {
        Task::Classify | Task::Anticipate => Normalization::None,
        Task::Forecast => Normalization::PerFeature,
    }
}

/// Frames per second of sampling for `anticipate` and `forecast` when no flag sets it: their
/// windows of `--clip-len` steps cut longer videos, and a second ahead must be a few steps.
pub const TIMELINE_FPS: f64 = 4.0;

/// The sampling flags, or when they set none of `--fps`, `--stride`, `--keyframes`, a sampling chosen from
/// the data and why. classify: `--clip-len` steps over the median clip (a 2 s clip is not cut
/// down to a handful of steps by a rate meant for long videos; a long one is not decoded at a
/// rate it would be sampled down from), at most 30 per second (a rate above the video's own
/// takes every frame); anticipate and forecast: [`TIMELINE_FPS`].
fn choose_sampling(args: &TrainSettings, dataset: &Dataset) -> (SamplingSettings, Option<String>) {
    let given = &args.sampling;
    if given.fps.is_some() || given.stride.is_some() || given.keyframes {
        return (given.clone(), None);
    }
    let at = |fps: f64, why: String| {
        let sampling = SamplingSettings {
            fps: Some(fps),
            ..given.clone()
        };
        (sampling, Some(why))
    };
    if args.task != Task::Classify {
        return at(
            TIMELINE_FPS,
            format!(
                "{TIMELINE_FPS} fps, the default for {} (windows of --clip-len steps over longer videos)",
                args.task.name()
            ),
        );
    }
    // The training clips' lengths: held-out clips choose nothing.
    let mut durations: Vec<f64> = dataset
        .clips
        .iter()
        .filter(|c| c.split == Split::Train)
        .filter_map(|c| match c.segment {
            Some((start, end)) if end.is_finite() => Some(end - start),
            _ => media::probe(&c.path).ok()?.duration,
        })
        .filter(|d| d.is_finite() && *d > 0.0)
        .collect();
    durations.sort_by(f64::total_cmp);
    let Some(&median) = durations.get(durations.len() / 2) else {
        return at(
            TIMELINE_FPS,
            format!("{TIMELINE_FPS} fps: no clip says how long it is"),
        );
    };
    // Quarter frames per second: a rate people can read back and type.
    let fps = ((args.clip_len as f64 / median * 4.0).ceil() / 4.0).clamp(0.25, MAX_CHOSEN_FPS);
    at(
        fps,
        format!(
            "{fps} fps: --clip-len {} steps over the median training clip of {median:.2} s (of {} clips), at most {MAX_CHOSEN_FPS} per second; --fps or --stride to choose",
            args.clip_len,
            durations.len()
        ),
    )
}

/// The highest rate [`choose_sampling`] picks.
const MAX_CHOSEN_FPS: f64 = 30.0;

fn check_numbers(args: &TrainSettings) -> Result<()> {
    if !(args.lr.is_finite() && args.lr > 0.0) {
        bail!("--lr must be a positive number, got {}", args.lr);
    }
    if !(args.weight_decay.is_finite() && args.weight_decay >= 0.0) {
        bail!(
            "--weight-decay must be zero or a positive number, got {}",
            args.weight_decay
        );
    }
    if !(args.adam_epsilon.is_finite() && args.adam_epsilon > 0.0) {
        bail!(
            "--adam-epsilon must be a positive number, got {}",
            args.adam_epsilon
        );
    }
    if !(0.0..1.0).contains(&args.dropout) {
        bail!("--dropout must be in [0, 1), got {}", args.dropout);
    }
    if args.task != Task::Classify && !(args.horizon.is_finite() && args.horizon > 0.0) {
        bail!(
            "--horizon must be a positive number of seconds, got {}",
            args.horizon
        );
    }
    if args.sampling.start.is_some() || args.sampling.end.is_some() {
        bail!("--start/--end do not apply to training; mark segments in a CSV manifest instead");
    }
    Ok(())
}

fn epoch_line(s: &EpochStats) -> String {
    let acc = |a: Option<f64>| a.map_or(String::new(), |a| format!(" acc {:.3}", a));
    format!(
        "epoch {:>3}  lr {:.2e}  train loss {:.4}{}  val loss {:.4}{}  ({:.1} s)",
        s.epoch,
        s.lr,
        s.train_loss,
        acc(s.train_accuracy),
        s.val_loss,
        acc(s.val_accuracy),
        s.seconds
    )
}

/// Loss (and accuracy) per epoch, training and validation, side by side; the kept epoch
/// marked.
fn plot_curves(path: &Path, history: &[EpochStats], best_epoch: usize, task: Task) -> Result<()> {
    let kept = vec![(best_epoch as f64, "kept".to_string())];
    let series = |name: &str, f: &dyn Fn(&EpochStats) -> Option<f64>| plot::Series {
        name: name.to_string(),
        points: history
            .iter()
            .map(|s| (s.epoch as f64, f(s).unwrap_or(f64::NAN)))
            .collect(),
    };
    let loss = plot::LineChart {
        title: "loss".into(),
        x_label: "epoch".into(),
        y_label: if task == Task::Forecast {
            "mse".into()
        } else {
            "cross-entropy".into()
        },
        series: vec![
            series("train", &|s| Some(s.train_loss)),
            series("val", &|s| Some(s.val_loss)),
        ],
        markers: kept.clone(),
        ..Default::default()
    };
    let mut panels = vec![loss.render(640, 400)];
    if task != Task::Forecast {
        let accuracy = plot::LineChart {
            title: "accuracy".into(),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            series: vec![
                series("train", &|s| s.train_accuracy),
                series("val", &|s| s.val_accuracy),
            ],
            y_range: Some((0.0, 1.0)),
            markers: kept,
            x_range: None,
            bands: Vec::new(),
        };
        panels.push(accuracy.render(640, 400));
    }
    plot::save_png(&plot::hstack(&panels), path)
}

fn write_clip_list(path: &Path, loaded: &[Loaded]) -> Result<()> {
    let mut file = crate::output::AtomicFile::create(path)?;
    for l in loaded {
        let line = ClipLine {
            path: &l.unit.path,
            label: l.unit.label.as_deref(),
            split: l.unit.split,
            segment: l.unit.segment,
            steps: l.features.len(),
            features: &l.entry,
        };
        serde_json::to_writer(&mut file, &line)?;
        file.write_all(b"\n")?;
    }
    file.commit()
}

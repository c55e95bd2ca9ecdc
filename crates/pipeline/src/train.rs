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
use crate::model_dir::{self, BackboneCard, ModelCard, Recipe, Resumable, SamplingCard, Task};
use crate::output::write_json;
use crate::plot;
use crate::progress::{self, BarSpec, Unit};
use crate::sampling::SamplingSettings;
use crate::streams::Streams;

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
    pub best_epoch: usize,
    pub seconds: f64,
    pub sequences_per_second: f64,
    /// Clips skipped (each was warned about).
    pub skipped: usize,
}

/// `metrics.json`.
#[derive(Debug, Serialize)]
struct Metrics<'a> {
    task: Task,
    cell: String,
    epochs: &'a [EpochStats],
    best_epoch: usize,
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
    let trained_before = out.join(temporal::store::WEIGHTS_FILE).exists()
        || std::fs::read_dir(out.join(model_dir::CHECKPOINT)).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("epoch-")))
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
    let card = ModelCard {
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
    };
    card.write(out)?;
    write_clip_list(&out.join("clips.jsonl"), &loaded)?;

    let train_set = sequences::sequences(&loaded, Some(Split::Train), card.clip_len, horizon_steps);
    let val_set = sequences::sequences(&loaded, Some(Split::Val), card.clip_len, horizon_steps);
    let test_set = sequences::sequences(&loaded, Some(Split::Test), card.clip_len, horizon_steps);
    if test_set.is_empty() {
        tracing::warn!(
            "no test split: the scores reported are validation scores, which flatter the model once they guide a choice; hold clips out with ROOT/test/, a manifest's test rows or --test-fraction"
        );
    }
    tracing::info!(
        "training {} head ({:?}, hidden {}, {} layer(s)) on {} sequences, validating on {}, testing on {}; steps {:.3} s apart{}",
        args.task.name(),
        args.cell,
        args.hidden,
        args.layers,
        train_set.len(),
        val_set.len(),
        test_set.len(),
        step_seconds,
        if horizon_steps > 0 {
            format!(", horizon {} steps", horizon_steps)
        } else {
            String::new()
        }
    );
    // The head is small: it trains on the CPU, where the same seed gives the same model.
    let device = Device::flex();
    let bar = progress::bar(BarSpec {
        prefix: "epoch".into(),
        total: None,
        unit: Unit::Items,
    });
    let started = Instant::now();
    let trained = temporal::train::train(
        &config,
        &train_set,
        &val_set,
        &train_options,
        &device,
        |e| match e {
            TrainEvent::EpochStart { epoch, batches } => {
                bar.set_position(0);
                bar.set_length(batches as u64);
                bar.set_prefix(format!("epoch {epoch}/{}", args.epochs));
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
            TrainEvent::Epoch(s) => progress::suspend(|| tracing::info!("{}", epoch_line(s))),
        },
    )?;
    drop(bar);
    let train_seconds = started.elapsed().as_secs_f64();
    let trained_epochs = trained.history.len() - trained.resumed_from;
    let sequences_per_second = (trained_epochs * train_set.len()) as f64 / train_seconds.max(1e-9);

    temporal::store::save(&trained.model, out)?;
    // The order-blind baseline: classify, a linear classifier on the clip's mean feature;
    // anticipate, one on the single frame now (no memory, no order).
    let baseline = match args.task {
        Task::Classify | Task::Anticipate => {
            let b = temporal::baseline::train_baseline(
                &sequences::baseline_view(&train_set, &config.head),
                &sequences::baseline_view(&val_set, &config.head),
                args.inputs.dim(),
                classes,
                args.seed,
                &device,
            )?;
            temporal::store::save_baseline(&b, out)?;
            Some(b)
        }
        Task::Forecast => None,
    };
    // Without validation clips the training loss chose the kept epoch: the training split is
    // the one that chose.
    let (chose, split) = if val_set.is_empty() {
        tracing::warn!("no validation clips: the first scores below are on the training clips");
        (&train_set, "train")
    } else {
        (&val_set, "val")
    };
    let scores = |set: &[temporal::Sequence], split: &str| {
        score(
            &trained.model,
            baseline.as_ref(),
            &card,
            set,
            split,
            &device,
        )
    };
    let val = scores(chose, split)?;
    // Test is scored once, here, after every choice was made.
    let test = (!test_set.is_empty())
        .then(|| scores(&test_set, "test"))
        .transpose()?;
    write_json(
        &out.join(model_dir::METRICS),
        &Metrics {
            task: args.task,
            cell: format!("{:?}", args.cell).to_lowercase(),
            epochs: &trained.history,
            best_epoch: trained.best_epoch,
            resumed_from: trained.resumed_from,
            stopped_early: trained.history.len() < args.epochs as usize,
            train_seconds,
            train_sequences_per_second: sequences_per_second,
            data: DataSummary {
                layout: dataset.layout,
                train_sequences: train_set.len(),
                val_sequences: val_set.len(),
                test_sequences: test_set.len(),
                skipped: &skipped,
            },
            validation: &val,
            test: test.as_ref(),
        },
    )?;
    plot_curves(
        &out.join(model_dir::CURVES),
        &trained.history,
        trained.best_epoch,
        args.task,
    )?;
    let shown = test.as_ref().unwrap_or(&val);
    if let Some(confusion) = &shown.confusion {
        plot::save_png(
            &plot::confusion_matrix(
                &format!("{} - {} split", args.task.name(), shown.split),
                &card.classes,
                confusion,
            ),
            &out.join(model_dir::CONFUSION),
        )?;
    }
    Ok(Trained {
        card,
        val,
        test,
        epochs: trained_epochs,
        epochs_total: trained.history.len(),
        best_epoch: trained.best_epoch,
        seconds: train_seconds,
        sequences_per_second,
        skipped: skipped.len(),
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

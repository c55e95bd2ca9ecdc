//! A trained model's scores on labelled clips, beside its baseline: what `pipeline eval`
//! computes and `pipeline train` reports on its validation split.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::prelude::*;
use serde::Serialize;
use temporal::Sequence;
use temporal::baseline::MeanPoolBaseline;
use temporal::metrics::Confusion;

use crate::backbone::Backbone;
use crate::data::{DataSettings, Purpose, Split, sequences};
use crate::model_dir::{HeadModel, ModelCard, Task};

/// Clips `eval` scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalSplit {
    Train,
    Val,
    Test,
    All,
}

/// What to evaluate on what.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    /// A folder written by `pipeline train`.
    pub model: PathBuf,
    pub data: DataSettings,
    /// `None`: test when the data has a test split, else val; all clips of data that has no
    /// split and is not the training data.
    pub split: Option<EvalSplit>,
}

/// What [`evaluate`] found.
#[derive(Debug)]
pub struct Evaluation {
    pub card: ModelCard,
    pub scores: Scores,
    /// Clips that could not be read (each was warned about).
    pub skipped: usize,
}

/// One class's row of the per-class table.
#[derive(Debug, Clone, Serialize)]
pub struct ClassRow {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// The forecast head against the persistence baseline.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastReport {
    /// Mean squared error per normalised feature of the model's forecast.
    pub model_mse: f64,
    /// The same error for "the embedding stays as it is".
    pub persistence_mse: f64,
    pub pairs: u64,
    /// `model` or `persistence`: whichever has the lower error.
    pub winner: &'static str,
    /// How much lower the model's error is than persistence's, in percent (negative: higher).
    pub improvement_percent: f64,
}

/// Scores on one set of clips: what `eval --json` prints and `metrics.json` keeps.
#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    pub split: String,
    pub sequences: usize,
    pub loss: f64,
    pub accuracy: Option<f64>,
    pub macro_f1: Option<f64>,
    pub baseline_accuracy: Option<f64>,
    pub baseline_macro_f1: Option<f64>,
    /// anticipate: the accuracy of predicting that the label `horizon` steps ahead is the
    /// label now (no model), on the same targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carry_forward_accuracy: Option<f64>,
    pub classes: Vec<String>,
    /// `confusion[truth][predicted]`.
    pub confusion: Option<Vec<Vec<u64>>>,
    pub baseline_confusion: Option<Vec<Vec<u64>>>,
    pub per_class: Vec<ClassRow>,
    pub forecast: Option<ForecastReport>,
}

/// Scores `model` (and `baseline`, when there is one) on `sequences`.
pub fn score(
    model: &HeadModel,
    baseline: Option<&MeanPoolBaseline>,
    card: &ModelCard,
    sequences: &[Sequence],
    split: &str,
    device: &Device,
) -> Result<Scores> {
    let evaluation = model.evaluate(sequences, device)?;
    let baseline = baseline.map(|b| {
        b.evaluate(
            &sequences::baseline_view(sequences, &card.model.head),
            card.classes.len(),
            device,
        )
    });
    let per_class = evaluation
        .confusion
        .as_ref()
        .map(|c| {
            c.per_class()
                .into_iter()
                .zip(&card.classes)
                .map(|(s, class)| ClassRow {
                    class: class.clone(),
                    precision: s.precision,
                    recall: s.recall,
                    f1: s.f1,
                    support: s.support,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Scores {
        split: split.to_string(),
        sequences: sequences.len(),
        loss: evaluation.loss,
        accuracy: evaluation.accuracy(),
        macro_f1: evaluation.confusion.as_ref().map(Confusion::macro_f1),
        baseline_accuracy: baseline.as_ref().map(Confusion::accuracy),
        carry_forward_accuracy: match card.model.head {
            temporal::Head::Anticipate { horizon, .. } => carry_forward(sequences, horizon),
            _ => None,
        },
        baseline_macro_f1: baseline.as_ref().map(Confusion::macro_f1),
        classes: card.classes.clone(),
        confusion: evaluation.confusion.map(|c| c.counts),
        baseline_confusion: baseline.map(|c| c.counts),
        per_class,
        forecast: evaluation.forecast.map(|f| {
            let improvement =
                100.0 * (1.0 - f.model_mse / f.persistence_mse.max(f64::MIN_POSITIVE));
            ForecastReport {
                model_mse: f.model_mse,
                persistence_mse: f.persistence_mse,
                pairs: f.pairs,
                winner: if f.model_mse < f.persistence_mse {
                    "model"
                } else {
                    "persistence"
                },
                improvement_percent: improvement,
            }
        }),
    })
}

/// The share of anticipation targets (step `t` whose label `horizon` steps later is known,
/// counted as the loss counts them) where the label at `t` is that label: the accuracy of
/// "what happens next is what happens now". A step without a label of its own counts as a
/// miss. `None` without targets.
fn carry_forward(sequences: &[Sequence], horizon: usize) -> Option<f64> {
    let (mut hits, mut total) = (0u64, 0u64);
    for s in sequences {
        let temporal::Target::Steps(steps) = &s.target else {
            continue;
        };
        for t in 0..s.steps.saturating_sub(horizon) {
            if let Some(ahead) = steps[t + horizon] {
                total += 1;
                hits += u64::from(steps[t] == Some(ahead));
            }
        }
    }
    (total > 0).then(|| hits as f64 / total as f64)
}

/// The scores as text tables.
pub fn tables(scores: &Scores, card: &ModelCard) -> String {
    let mut out = String::new();
    let chose = card
        .recipe
        .as_ref()
        .is_none_or(|r| r.selection == temporal::train::Selection::Best);
    let weighed_on_val = card
        .fusion
        .as_ref()
        .is_some_and(|f| f.weighed_on == crate::model_dir::WeighedOn::Validation);
    let role = match scores.split.as_str() {
        "val" if weighed_on_val => " (validation: it chose the fusion weights)",
        "val" if chose => " (validation: it chose the kept epoch)",
        "val" => {
            " (validation: the last epoch was kept, so it chose nothing unless it chose the settings)"
        }
        "test" => " (held out: it chose nothing)",
        _ => "",
    };
    let fused = card.fusion.as_ref().map_or(String::new(), |f| {
        let weights: Vec<String> = f
            .branches
            .iter()
            .map(|b| format!("{} {:.1}", b.stream.name(), b.weight))
            .collect();
        format!(", fused late: {}", weights.join(", "))
    });
    let _ = writeln!(
        out,
        "{} ({} {}{fused}), {} sequences of the {} split{role}",
        card.task().name(),
        cell_name(card),
        card.model.hidden,
        scores.sequences,
        scores.split
    );
    if let Some(f) = &scores.forecast {
        let _ = writeln!(
            out,
            "forecast error (MSE per normalised feature, {} step pairs):",
            f.pairs
        );
        let _ = writeln!(out, "  model        {:.4}", f.model_mse);
        let _ = writeln!(out, "  persistence  {:.4}", f.persistence_mse);
        let _ = writeln!(
            out,
            "  winner: {} ({:+.3}% error vs persistence)",
            f.winner, -f.improvement_percent
        );
        return out;
    }
    let width = scores
        .classes
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(out, "{:width$}  precision  recall     f1  support", "class");
    for row in &scores.per_class {
        let _ = writeln!(
            out,
            "{:width$}  {:>9.3}  {:>6.3}  {:>5.3}  {:>7}",
            row.class, row.precision, row.recall, row.f1, row.support
        );
    }
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let _ = writeln!(
        out,
        "accuracy {}  macro-F1 {}",
        pct(scores.accuracy),
        scores.macro_f1.map_or("-".into(), |v| format!("{v:.3}"))
    );
    if let Some(carried) = scores.carry_forward_accuracy {
        let _ = writeln!(
            out,
            "the label now, carried forward (no model): accuracy {}",
            pct(Some(carried))
        );
    }
    if scores.baseline_accuracy.is_some() {
        let _ = writeln!(
            out,
            "order-blind baseline ({}, linear): accuracy {}  macro-F1 {}",
            if card.task() == Task::Anticipate {
                "the frame now alone"
            } else {
                "mean of frame features"
            },
            pct(scores.baseline_accuracy),
            scores
                .baseline_macro_f1
                .map_or("-".into(), |v| format!("{v:.3}"))
        );
    }
    if let Some(confusion) = &scores.confusion {
        let _ = writeln!(out, "confusion (rows: truth, columns: predicted):");
        let cell = confusion
            .iter()
            .flatten()
            .map(|c| c.to_string().len())
            .max()
            .unwrap_or(1)
            .max(
                scores
                    .classes
                    .iter()
                    .map(|c| c.len().min(8))
                    .max()
                    .unwrap_or(3),
            );
        let header: Vec<String> = scores
            .classes
            .iter()
            .map(|c| format!("{:>cell$}", c.chars().take(8).collect::<String>()))
            .collect();
        let _ = writeln!(out, "  {:width$}  {}", "", header.join(" "));
        for (class, row) in scores.classes.iter().zip(confusion) {
            let cells: Vec<String> = row.iter().map(|c| format!("{c:>cell$}")).collect();
            let _ = writeln!(out, "  {class:width$}  {}", cells.join(" "));
        }
    }
    out
}

fn cell_name(card: &ModelCard) -> &'static str {
    match card.model.cell {
        temporal::CellKind::Lstm => "lstm",
        temporal::CellKind::Gru => "gru",
        temporal::CellKind::Rnn => "rnn",
    }
}

/// Scores the model in `args.model` on `args.data`.
pub fn evaluate(args: &EvalSettings) -> Result<Evaluation> {
    let card = ModelCard::open(&args.model)?;
    let motion = match card.motion(media::MotionSource::Auto, card.sampling.keyframes)? {
        // A features-only head reads no motion: none decoded (cache entries as before).
        source if card.inputs.needs_motion() => source,
        _ => media::MotionSource::Off,
    };
    let options = card.sampling.options(motion)?;
    let labelled = card.task() != Task::Forecast;
    let same_data = std::fs::canonicalize(&args.data.data).ok() == Some(card.data.clone());
    // The training run's --group-by names its own files; other data is grouped by file.
    let plan = if same_data {
        card.split.clone()
    } else {
        crate::data::SplitPlan {
            group_by: None,
            ..card.split.clone()
        }
    };
    let dataset = crate::data::discover(&args.data.data, labelled, &plan, Purpose::Evaluation)?;
    if let Some(c) = dataset
        .clips
        .iter()
        .find(|c| c.label.as_ref().is_some_and(|l| !card.classes.contains(l)))
    {
        bail!(
            "unknown class '{}' ({}): the model knows {}",
            c.label.as_deref().unwrap_or_default(),
            c.path.display(),
            card.classes.join(", ")
        );
    }
    let own_split = dataset.has_split;
    let split = match args.split {
        Some(EvalSplit::Train) => Some(Split::Train),
        Some(EvalSplit::Val) => Some(Split::Val),
        Some(EvalSplit::Test) => Some(Split::Test),
        Some(EvalSplit::All) => None,
        // New data without a split of its own is a test set: all of it.
        None if !same_data && !own_split => None,
        None if dataset.has(Split::Test) => Some(Split::Test),
        None => {
            tracing::warn!(
                "the data has no test split: scoring the validation split (a number that flatters the model once it guided a choice)"
            );
            Some(Split::Val)
        }
    };
    let model_args = &args.data.backbone();
    let selected = crate::device::select(model_args.device)?;
    let backbone = Backbone::load(model_args, options.size, &selected.device)?;
    if backbone.fingerprint != card.backbone.fingerprint {
        bail!(
            "the model was trained on features of {}; these weights give {} (pass the same --weights)",
            card.backbone.fingerprint,
            backbone.fingerprint
        );
    }
    let cache = args.data.feature_cache()?;
    let units: Vec<_> = sequences::units(&dataset, card.task(), |l| {
        card.classes.iter().position(|c| c == l)
    })
    .into_iter()
    .filter(|u| split.is_none_or(|s| u.split == s))
    .collect();
    if units.is_empty() {
        bail!(
            "{}: no clips in the {} split",
            args.data.data.display(),
            split_name(split)
        );
    }
    let (loaded, skipped) = sequences::load(
        units,
        &cache,
        &options,
        &card.inputs,
        &backbone,
        model_args.batch as usize,
    );
    let seqs = sequences::sequences(&loaded, None, card.clip_len, card.horizon_steps);
    if seqs.is_empty() {
        bail!("no clip could be read ({} skipped)", skipped.len());
    }
    let device = Device::flex();
    let model = HeadModel::load(&args.model, &card, &device)?;
    let baseline = temporal::store::load_baseline(&args.model, &card.model, &device)?;
    let scores = score(
        &model,
        baseline.as_ref(),
        &card,
        &seqs,
        split_name(split),
        &device,
    )?;
    Ok(Evaluation {
        card,
        scores,
        skipped: skipped.len(),
    })
}

fn split_name(split: Option<Split>) -> &'static str {
    split.map_or("all", Split::name)
}

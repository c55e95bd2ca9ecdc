//! Training and evaluating a [`TemporalModel`] on feature sequences already in memory.
//!
//! One loop serves the three heads; what differs is the loss read off the outputs:
//! - classify: cross-entropy of the logits at each clip's last step;
//! - anticipate: cross-entropy at every step that has a label `horizon` steps later;
//! - forecast: mean squared error between the predicted change of the (normalised) embedding
//!   and the change that arrives `ahead` steps later.
//!
//! Sequences of different lengths share a batch: they are zero-padded at the end and the
//! padding is masked out (the recurrence is causal, so padding never leaks backwards).

use std::path::PathBuf;
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::metrics::Confusion;
use crate::model::{Head, TemporalConfig, TemporalModel};
use crate::progress::Progress;
use crate::sequence::fingerprint;

// Defined below this module since the checkpoint stores them too; still reachable at the paths
// callers know.
pub use crate::progress::EpochStats;
pub use crate::rng::SplitMix64;
pub use crate::sequence::{Sequence, Target};

/// How the learning rate moves over the epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The same rate every epoch.
    Constant,
    /// Cosine-decayed from the rate to a tenth of it over the epochs.
    Cosine,
}

impl Schedule {
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::Cosine => "cosine",
        }
    }

    /// The rate of epoch `epoch` (from 0) of `epochs`, for a peak rate `lr`.
    pub fn rate(self, lr: f64, epoch: usize, epochs: usize) -> f64 {
        match self {
            Schedule::Constant => lr,
            Schedule::Cosine => {
                let fraction = epoch as f64 / epochs.max(1) as f64;
                lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * fraction).cos()))
            }
        }
    }
}

/// Which epoch's model training returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// The epoch with the best validation score (ties to the lower validation loss), stopping
    /// after `patience` epochs without one.
    Best,
    /// The last epoch: a fixed schedule; validation is measured but chooses nothing.
    Last,
}

/// How input features are normalised before the model sees them (the statistics of the
/// training set, stored with the model as per-feature `mean` and `std`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalization {
    /// Each feature by its own mean and standard deviation: features that barely vary in
    /// training are stretched most, and footage where they do vary lands far outside what the
    /// model saw.
    PerFeature,
    /// Every feature by one mean and one standard deviation over all of them: the features'
    /// relative scale is kept.
    Global,
    /// The features as they are.
    None,
}

impl Normalization {
    pub fn name(self) -> &'static str {
        match self {
            Normalization::PerFeature => "per-feature",
            Normalization::Global => "global",
            Normalization::None => "none",
        }
    }

    /// The per-feature mean and standard deviation this normalisation uses, from the training
    /// sequences.
    pub fn statistics(self, sequences: &[Sequence], dim: usize) -> (Vec<f32>, Vec<f32>) {
        match self {
            Normalization::PerFeature => feature_statistics(sequences, dim),
            Normalization::None => (vec![0.0; dim], vec![1.0; dim]),
            Normalization::Global => {
                let (mean, std) = feature_statistics(sequences, dim);
                // Every feature has the same count: the pooled mean is the mean of the means,
                // the pooled variance the mean variance plus the spread of the means.
                let d = dim.max(1) as f64;
                let all = mean.iter().map(|&m| f64::from(m)).sum::<f64>() / d;
                let var = mean
                    .iter()
                    .zip(&std)
                    .map(|(&m, &s)| f64::from(s).powi(2) + (f64::from(m) - all).powi(2))
                    .sum::<f64>()
                    / d;
                (
                    vec![all as f32; dim],
                    vec![var.sqrt().max(1e-6) as f32; dim],
                )
            }
        }
    }
}

impl Selection {
    pub fn name(self) -> &'static str {
        match self {
            Selection::Best => "best",
            Selection::Last => "last",
        }
    }
}

/// Optimisation settings.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch: usize,
    /// Learning rate of AdamW (the peak rate of a decaying schedule).
    pub lr: f64,
    pub schedule: Schedule,
    pub selection: Selection,
    pub normalization: Normalization,
    pub weight_decay: f32,
    /// AdamW's epsilon, added to the root of the second moment (burn's default 1e-5,
    /// PyTorch's 1e-8): above the gradients' own scale it shortens the steps of the weights of
    /// rarely active inputs.
    pub epsilon: f32,
    /// Each parameter tensor's gradient is rescaled so its norm is at most this (burn's
    /// `GradientClipping::Norm`, applied per tensor).
    pub clip_norm: f32,
    /// [`Selection::Best`]: stop after this many epochs without a better validation score.
    pub patience: usize,
    /// Seeds initialisation, dropout and batch order: the same seed on the CPU gives the same
    /// model (burn-flex's generator is process-wide: one training at a time per process).
    pub seed: u64,
    /// Where to write a checkpoint after every epoch and to resume from, if one is there. One
    /// made with other model settings, another seed or other training or validation sequences
    /// is refused, not resumed.
    pub checkpoint: Option<PathBuf>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 60,
            batch: 32,
            lr: 1e-3,
            schedule: Schedule::Constant,
            selection: Selection::Last,
            normalization: Normalization::None,
            weight_decay: 1e-2,
            epsilon: 1e-8,
            clip_norm: 1.0,
            patience: 8,
            seed: 0,
            checkpoint: None,
        }
    }
}

/// What [`train`] reports while it runs.
#[derive(Debug, Clone, Copy)]
pub enum TrainEvent<'a> {
    /// An epoch starts (or resumes) with this many batches.
    EpochStart { epoch: usize, batches: usize },
    /// A batch finished; `loss` and `accuracy` are running values over the epoch so far.
    Batch {
        done: usize,
        loss: f64,
        accuracy: Option<f64>,
    },
    /// An epoch finished.
    Epoch(&'a EpochStats),
}

/// The result of [`train`].
#[derive(Debug)]
pub struct Trained {
    /// The model of the best validation epoch, on the device given to [`train`], no autodiff.
    pub model: TemporalModel,
    pub history: Vec<EpochStats>,
    pub best_epoch: usize,
    /// The epoch count this run started from (non-zero when resumed from a checkpoint).
    pub resumed_from: usize,
}

/// Validation loss and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean loss per target (cross-entropy, or squared error per feature).
    pub loss: f64,
    /// Classify and anticipate: truth vs prediction per target.
    pub confusion: Option<Confusion>,
    /// Forecast: the model against the persistence baseline.
    pub forecast: Option<ForecastError>,
}

/// Mean squared error per (normalised) feature of the forecast, and of the persistence
/// baseline that predicts the embedding stays as it is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastError {
    pub model_mse: f64,
    pub persistence_mse: f64,
    /// How many (step, future) pairs were scored.
    pub pairs: u64,
}

impl Evaluation {
    /// Higher is better: accuracy, or minus the forecast error.
    pub fn score(&self) -> f64 {
        match (&self.confusion, &self.forecast) {
            (Some(c), _) => c.accuracy(),
            (None, Some(f)) => -f.model_mse,
            (None, None) => -self.loss,
        }
    }

    pub fn accuracy(&self) -> Option<f64> {
        self.confusion.as_ref().map(Confusion::accuracy)
    }
}

/// Trains a model with the head of `config`: AdamW with gradient-norm clipping and the
/// learning-rate schedule of `options`, returning the last epoch's model or the one with the
/// best validation score (ties to the lower validation loss, stopping after `patience` epochs
/// without improvement), as `options.selection` says. Inputs are normalised as
/// `options.normalization` says, with statistics of the training set that become part of the
/// model. With
/// `options.checkpoint`, the state after every epoch is written there, and a run that finds a
/// checkpoint carries on from it.
pub fn train(
    config: &TemporalConfig,
    train: &[Sequence],
    val: &[Sequence],
    options: &TrainOptions,
    device: &Device,
    mut on_event: impl FnMut(TrainEvent<'_>),
) -> Result<Trained> {
    if train.is_empty() {
        return Err(Error::Empty);
    }
    validate(config, train.iter().chain(val))?;
    if !train.iter().any(|s| targets(config, s) > 0) {
        return Err(Error::TooShort {
            ahead: shift(&config.head),
        });
    }
    device.seed(options.seed);
    let autodiff = device.clone().autodiff();
    let (mean, std) = options.normalization.statistics(train, config.input_dim);
    let mut model = config.init(&autodiff).with_normalization(
        Tensor::from_floats(mean.as_slice(), &autodiff),
        Tensor::from_floats(std.as_slice(), &autodiff),
    );
    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(options.weight_decay)
        .with_epsilon(options.epsilon)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(options.clip_norm)))
        .init();
    let mut progress = Progress::new(options.seed);
    let mut best: Option<TemporalModel> = None;
    let checkpoint = match &options.checkpoint {
        Some(dir) => Some(Checkpoint::new(
            dir,
            config,
            options.seed,
            fingerprint([train, val]),
        )?),
        None => None,
    };
    let saved = match &checkpoint {
        Some(c) => c.load(&autodiff)?,
        None => None,
    };
    if let Some(saved) = saved {
        model = saved.model;
        best = Some(saved.best);
        optimizer = optimizer.load_record(saved.optimizer);
        progress = saved.progress;
    }
    let resumed_from = progress.history.len();
    for epoch in resumed_from..options.epochs {
        if progress.since_best >= options.patience {
            break;
        }
        let started = Instant::now();
        // Dropout draws from a generator reseeded per epoch, so a resumed run draws the same
        // masks as an uninterrupted one.
        autodiff
            .seed(SplitMix64(options.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9)).next_u64());
        let lr = options.schedule.rate(options.lr, epoch, options.epochs);
        let mut order: Vec<usize> = (0..train.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, (progress.rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let batches: Vec<&[usize]> = order.chunks(options.batch.max(1)).collect();
        on_event(TrainEvent::EpochStart {
            epoch: epoch + 1,
            batches: batches.len(),
        });
        let mut totals = Totals::default();
        for (done, chunk) in batches.iter().enumerate() {
            let batch: Vec<&Sequence> = chunk.iter().map(|&i| &train[i]).collect();
            if let Some(out) = run_batch(&model, config, &batch, &autodiff) {
                let grads = GradientsParams::from_grads(out.loss.backward(), &model);
                model = optimizer.step(lr, model, grads);
                totals.add(&out.summary);
            }
            on_event(TrainEvent::Batch {
                done: done + 1,
                loss: totals.mean_loss(),
                accuracy: totals.accuracy(),
            });
        }
        let evaluation = if val.is_empty() {
            None
        } else {
            Some(evaluate(&model.valid(), val, device)?)
        }
        // Validation clips too short to hold a single target score nothing.
        .filter(|e| !e.loss.is_nan());
        let stats = EpochStats {
            epoch: epoch + 1,
            lr,
            train_loss: totals.mean_loss(),
            train_accuracy: totals.accuracy(),
            val_loss: evaluation.as_ref().map_or(f64::NAN, |e| e.loss),
            val_accuracy: evaluation.as_ref().and_then(Evaluation::accuracy),
            seconds: started.elapsed().as_secs_f64(),
        };
        // Without a validation set the training loss is the score: early stopping then only
        // ends runs that stopped improving on the training data.
        let has_val = evaluation.is_some();
        let score = evaluation.map_or(-stats.train_loss, |e| e.score());
        // Ties of the score (accuracy often ties on small validation sets) go to the lower loss.
        let loss = if has_val {
            stats.val_loss
        } else {
            stats.train_loss
        };
        let better = match (options.selection, progress.best_score, progress.best_loss) {
            (Selection::Last, ..) | (_, None, _) => true,
            (Selection::Best, Some(best), best_loss) => {
                score > best || (score == best && loss < best_loss.unwrap_or(f64::INFINITY))
            }
        };
        if better {
            progress.best_score = Some(score);
            progress.best_loss = Some(loss);
            progress.best_epoch = epoch + 1;
            progress.since_best = 0;
            best = Some(model.clone());
        } else {
            progress.since_best += 1;
        }
        progress.history.push(stats);
        if let Some(checkpoint) = &checkpoint {
            let best = best.as_ref().unwrap_or(&model);
            checkpoint.save(&model, best, &optimizer, &progress)?;
        }
        on_event(TrainEvent::Epoch(&stats));
    }
    let model = best.unwrap_or(model).valid();
    Ok(Trained {
        model,
        best_epoch: progress.best_epoch,
        history: progress.history,
        resumed_from,
    })
}

/// Loss and metrics of `model` on `sequences` (inference mode: pass `model.valid()`).
pub fn evaluate(
    model: &TemporalModel,
    sequences: &[Sequence],
    device: &Device,
) -> Result<Evaluation> {
    let config = model.config();
    validate(&config, sequences)?;
    let mut totals = Totals::default();
    for chunk in sequences.chunks(64) {
        let batch: Vec<&Sequence> = chunk.iter().collect();
        if let Some(out) = run_batch(model, &config, &batch, device) {
            totals.add(&out.summary);
        }
    }
    Ok(Evaluation {
        loss: totals.mean_loss(),
        confusion: match config.head {
            Head::Classify { classes } | Head::Anticipate { classes, .. } => {
                Some(Confusion::from_pairs(classes, totals.pairs))
            }
            Head::Forecast { .. } => None,
        },
        forecast: matches!(config.head, Head::Forecast { .. }).then(|| ForecastError {
            model_mse: totals.loss_sum / totals.count.max(1) as f64,
            persistence_mse: totals.persistence_sum / totals.count.max(1) as f64,
            pairs: totals.count,
        }),
    })
}

/// How far ahead the head's target lies, in steps.
fn shift(head: &Head) -> usize {
    match *head {
        Head::Classify { .. } => 0,
        Head::Anticipate { horizon, .. } => horizon,
        Head::Forecast { ahead } => ahead,
    }
}

fn validate<'a>(
    config: &TemporalConfig,
    sequences: impl IntoIterator<Item = &'a Sequence>,
) -> Result<()> {
    let dim = config.input_dim;
    let task = match config.head {
        Head::Classify { .. } => "classify",
        Head::Anticipate { .. } => "anticipate",
        Head::Forecast { .. } => "forecast",
    };
    let classes = match config.head {
        Head::Classify { classes } | Head::Anticipate { classes, .. } => classes,
        Head::Forecast { .. } => 0,
    };
    for (index, s) in sequences.into_iter().enumerate() {
        if s.steps == 0 {
            return Err(Error::NoSteps { index });
        }
        if s.features.len() != s.steps * dim {
            return Err(Error::Shape {
                index,
                got: s.features.len(),
                steps: s.steps,
                dim,
            });
        }
        let labels: Vec<usize> = match (&config.head, &s.target) {
            (Head::Classify { .. }, Target::Clip(l)) => vec![*l],
            (Head::Anticipate { .. }, Target::Steps(steps)) if steps.len() == s.steps => {
                steps.iter().flatten().copied().collect()
            }
            (Head::Forecast { .. }, _) => Vec::new(),
            _ => return Err(Error::Target { index, task }),
        };
        if let Some(&label) = labels.iter().find(|&&l| l >= classes) {
            return Err(Error::Label {
                index,
                label,
                classes,
            });
        }
    }
    Ok(())
}

/// How many loss terms a sequence contributes.
fn targets(config: &TemporalConfig, s: &Sequence) -> usize {
    match (&config.head, &s.target) {
        (Head::Classify { .. }, _) => 1,
        (Head::Anticipate { horizon, .. }, Target::Steps(labels)) => {
            labels.iter().skip(*horizon).flatten().count()
        }
        (Head::Anticipate { .. }, _) => 0,
        (Head::Forecast { ahead }, _) => s.steps.saturating_sub(*ahead),
    }
}

/// Loss of one batch (mean over its targets) and what the epoch totals need.
struct BatchOut {
    loss: Tensor<1>,
    summary: Summary,
}

#[derive(Debug, Default)]
struct Summary {
    loss_sum: f64,
    count: u64,
    pairs: Vec<(usize, usize)>,
    persistence_sum: f64,
}

#[derive(Debug, Default)]
struct Totals {
    loss_sum: f64,
    count: u64,
    pairs: Vec<(usize, usize)>,
    persistence_sum: f64,
}

impl Totals {
    fn add(&mut self, s: &Summary) {
        self.loss_sum += s.loss_sum;
        self.count += s.count;
        self.pairs.extend_from_slice(&s.pairs);
        self.persistence_sum += s.persistence_sum;
    }

    fn mean_loss(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.loss_sum / self.count as f64
        }
    }

    fn accuracy(&self) -> Option<f64> {
        (!self.pairs.is_empty()).then(|| {
            self.pairs.iter().filter(|(t, p)| t == p).count() as f64 / self.pairs.len() as f64
        })
    }
}

/// Forward pass and loss of a batch; `None` when no sequence in it has a target.
fn run_batch(
    model: &TemporalModel,
    config: &TemporalConfig,
    batch: &[&Sequence],
    device: &Device,
) -> Option<BatchOut> {
    let count: usize = batch.iter().map(|s| targets(config, s)).sum();
    if count == 0 {
        return None;
    }
    let (x, lengths) = pad(batch, config.input_dim, device);
    let [b, t, _] = x.dims();
    match config.head {
        Head::Classify { classes } => {
            let (out, _) = model.forward(x, None);
            let index: Vec<i64> = lengths
                .iter()
                .flat_map(|&l| std::iter::repeat_n(l as i64 - 1, classes))
                .collect();
            let index = Tensor::from_data(TensorData::new(index, [b, 1, classes]), device);
            let logits = out.gather(1, index).reshape([b, classes]);
            let labels: Vec<usize> = batch
                .iter()
                .map(|s| match s.target {
                    Target::Clip(l) => l,
                    _ => 0,
                })
                .collect();
            let targets = Tensor::from_data(
                TensorData::new(labels.iter().map(|&l| l as i64).collect(), [b]),
                device,
            );
            let loss = CrossEntropyLossConfig::new()
                .init(device)
                .forward(logits.clone(), targets);
            Some(finish_classes(loss, logits, labels, b as u64))
        }
        Head::Anticipate { classes, horizon } => {
            let (out, _) = model.forward(x, None);
            let (mut labels, mut mask, mut truth) = (vec![0i64; b * t], vec![0f32; b * t], vec![]);
            for (i, s) in batch.iter().enumerate() {
                let Target::Steps(steps) = &s.target else {
                    continue;
                };
                for step in 0..s.steps.saturating_sub(horizon) {
                    if let Some(l) = steps[step + horizon] {
                        labels[i * t + step] = l as i64;
                        mask[i * t + step] = 1.0;
                        truth.push((i * t + step, l));
                    }
                }
            }
            let logits = out.reshape([b * t, classes]);
            let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [b * t]), device);
            let mask = Tensor::<1>::from_data(TensorData::new(mask, [b * t]), device);
            let picked = log_softmax(logits.clone(), 1)
                .gather(1, labels.reshape([b * t, 1]))
                .reshape([b * t]);
            let loss = -(picked * mask).sum() / count as f64;
            let predicted: Vec<i64> = logits.argmax(1).into_data().iter::<i64>().collect();
            let pairs = truth
                .into_iter()
                .map(|(row, l)| (l, predicted[row] as usize))
                .collect();
            let mean = loss.clone().into_scalar::<f64>();
            Some(BatchOut {
                loss,
                summary: Summary {
                    loss_sum: mean * count as f64,
                    count: count as u64,
                    pairs,
                    persistence_sum: 0.0,
                },
            })
        }
        Head::Forecast { ahead } => {
            if t <= ahead {
                return None;
            }
            let d = config.input_dim;
            let normalized = model.normalize(x.clone());
            let (out, _) = model.forward(x, None);
            let horizon = t - ahead;
            let change = normalized.clone().slice([0..b, ahead..t, 0..d])
                - normalized.slice([0..b, 0..horizon, 0..d]);
            let predicted = out.slice([0..b, 0..horizon, 0..d]);
            let mask: Vec<f32> = lengths
                .iter()
                .flat_map(|&l| (0..horizon).map(move |step| f32::from(u8::from(step + ahead < l))))
                .collect();
            let mask = Tensor::<2>::from_data(TensorData::new(mask, [b, horizon]), device);
            let error = (predicted - change.clone())
                .square()
                .mean_dim(2)
                .reshape([b, horizon]);
            let persistence = (change.square().mean_dim(2).reshape([b, horizon]) * mask.clone())
                .sum()
                .into_scalar::<f64>();
            let loss = (error * mask).sum() / count as f64;
            let mean = loss.clone().into_scalar::<f64>();
            Some(BatchOut {
                loss,
                summary: Summary {
                    loss_sum: mean * count as f64,
                    count: count as u64,
                    pairs: Vec::new(),
                    persistence_sum: persistence,
                },
            })
        }
    }
}

fn finish_classes(loss: Tensor<1>, logits: Tensor<2>, labels: Vec<usize>, n: u64) -> BatchOut {
    let predicted: Vec<i64> = logits.argmax(1).into_data().iter::<i64>().collect();
    let mean = loss.clone().into_scalar::<f64>();
    BatchOut {
        loss,
        summary: Summary {
            loss_sum: mean * n as f64,
            count: n,
            pairs: labels
                .into_iter()
                .zip(predicted)
                .map(|(l, p)| (l, p as usize))
                .collect(),
            persistence_sum: 0.0,
        },
    }
}

/// Sequences zero-padded to the longest, `[batch, time, dim]`, and their lengths.
fn pad(batch: &[&Sequence], dim: usize, device: &Device) -> (Tensor<3>, Vec<usize>) {
    let t = batch.iter().map(|s| s.steps).max().unwrap_or(1);
    let mut values = vec![0f32; batch.len() * t * dim];
    for (i, s) in batch.iter().enumerate() {
        values[i * t * dim..][..s.features.len()].copy_from_slice(&s.features);
    }
    let lengths = batch.iter().map(|s| s.steps).collect();
    (
        Tensor::from_data(TensorData::new(values, [batch.len(), t, dim]), device),
        lengths,
    )
}

/// Per-feature mean and standard deviation over every step of every sequence.
pub fn feature_statistics(sequences: &[Sequence], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut sum, mut sq, mut n) = (vec![0f64; dim], vec![0f64; dim], 0usize);
    for s in sequences {
        for row in s.features.chunks_exact(dim) {
            for (j, v) in row.iter().enumerate() {
                sum[j] += f64::from(*v);
                sq[j] += f64::from(*v) * f64::from(*v);
            }
            n += 1;
        }
    }
    let n = n.max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| ((q / n - m * m).max(0.0).sqrt()).max(1e-6) as f32)
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::CellKind;

    /// burn-flex's random generator is process-wide: tests that seed it and train must not
    /// interleave, or one test's draws land in another's sequence.
    pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Class 0: a bump that moves up through the features over time; class 1: the same frames
    /// in reverse order. The mean over time is identical, so only order tells them apart.
    pub(crate) fn order_task(n: usize, seed: u64) -> Vec<Sequence> {
        let (steps, dim) = (6, 6);
        let mut rng = SplitMix64(seed);
        (0..n)
            .map(|i| {
                let label = i % 2;
                let mut features = vec![0f32; steps * dim];
                for t in 0..steps {
                    let pos = if label == 0 { t } else { steps - 1 - t };
                    for j in 0..dim {
                        let noise = (rng.next_u64() % 1000) as f32 / 1000.0 * 0.2 - 0.1;
                        features[t * dim + j] = if j == pos { 1.0 } else { 0.0 } + noise;
                    }
                }
                Sequence {
                    features,
                    steps,
                    target: Target::Clip(label),
                }
            })
            .collect()
    }

    fn small(cell: CellKind, head: Head) -> TemporalConfig {
        TemporalConfig::new(cell, head)
            .with_input_dim(6)
            .with_projection(16)
            .with_hidden(16)
            .with_dropout(0.0)
    }

    fn options() -> TrainOptions {
        TrainOptions {
            epochs: 40,
            batch: 16,
            lr: 1e-2,
            schedule: Schedule::Cosine,
            selection: Selection::Best,
            normalization: Normalization::PerFeature,
            epsilon: 1e-5,
            seed: 7,
            ..Default::default()
        }
    }

    #[test]
    fn global_normalization_pools_every_feature() {
        // Two features: one around 0 with spread 1, one around 10 with spread 3.
        let seq = Sequence {
            features: vec![-1.0, 7.0, 1.0, 13.0],
            steps: 2,
            target: Target::Clip(0),
        };
        let (mean, std) = Normalization::PerFeature.statistics(std::slice::from_ref(&seq), 2);
        assert_eq!((mean, std), (vec![0.0, 10.0], vec![1.0, 3.0]));
        let (mean, std) = Normalization::Global.statistics(std::slice::from_ref(&seq), 2);
        // Pooled over the four values -1, 7, 1, 13: mean 5, variance (36+4+16+64)/4 = 30.
        assert_eq!(mean, vec![5.0, 5.0]);
        assert!(
            std.iter().all(|s| (s - 30f32.sqrt()).abs() < 1e-5),
            "{std:?}"
        );
        let (mean, std) = Normalization::None.statistics(std::slice::from_ref(&seq), 2);
        assert_eq!((mean, std), (vec![0.0, 0.0], vec![1.0, 1.0]));
    }

    #[test]
    fn schedules_and_the_last_epoch_selection() {
        assert_eq!(Schedule::Constant.rate(1e-3, 7, 60), 1e-3);
        assert!((Schedule::Cosine.rate(1.0, 0, 10) - 1.0).abs() < 1e-12);
        assert!((Schedule::Cosine.rate(1.0, 5, 10) - 0.55).abs() < 1e-12);
        assert!(Schedule::Cosine.rate(1.0, 9, 10) < 0.13);
        // Selection::Last runs every epoch (no early stopping) and keeps the last one, whatever
        // validation said.
        let _serial = serial();
        let device = Device::flex();
        let config = small(CellKind::Gru, Head::Classify { classes: 2 });
        let options = TrainOptions {
            epochs: 6,
            patience: 1,
            selection: Selection::Last,
            schedule: Schedule::Constant,
            ..options()
        };
        let (train_set, val) = (order_task(32, 1), order_task(16, 2));
        let trained = train(&config, &train_set, &val, &options, &device, |_| {}).expect("trains");
        assert_eq!((trained.history.len(), trained.best_epoch), (6, 6));
        assert!(trained.history.iter().all(|e| e.lr == options.lr));
    }

    #[test]
    fn every_cell_learns_an_order_only_task() {
        let _serial = serial();
        let device = Device::flex();
        let (train_set, val) = (order_task(64, 1), order_task(32, 2));
        for cell in [CellKind::Lstm, CellKind::Gru, CellKind::Rnn] {
            let config = small(cell, Head::Classify { classes: 2 });
            let trained =
                train(&config, &train_set, &val, &options(), &device, |_| {}).expect("trains");
            let accuracy = evaluate(&trained.model, &val, &device)
                .expect("evaluates")
                .accuracy()
                .unwrap_or(0.0);
            assert!(
                accuracy >= 0.95,
                "{cell:?}: val accuracy {accuracy}, history {:?}",
                trained.history
            );
        }
    }

    #[test]
    fn padded_batches_read_each_clip_at_its_own_last_step() {
        let _serial = serial();
        // Shortening half the clips by one step changes nothing about the task (the last
        // step still tells the class); the padded steps must not leak into the prediction.
        let device = Device::flex();
        let mut train_set = order_task(64, 1);
        for s in train_set.iter_mut().step_by(2) {
            s.steps -= 1;
            s.features.drain(..6);
        }
        let config = small(CellKind::Gru, Head::Classify { classes: 2 });
        let trained = train(&config, &train_set, &[], &options(), &device, |_| {}).expect("trains");
        let model = trained.model;
        let batched = evaluate(&model, &train_set, &device).expect("eval");
        assert!(batched.accuracy().unwrap_or(0.0) >= 0.95, "{batched:?}");
        // A short clip padded beside a longer one gets the loss it gets alone.
        let (short, long) = (&train_set[0], &train_set[1]);
        assert!(short.steps < long.steps);
        let alone =
            |s: &Sequence| evaluate(&model, std::slice::from_ref(s), &device).expect("eval");
        let pair = evaluate(&model, &[short.clone(), long.clone()], &device).expect("eval");
        let separate = alone(short).loss + alone(long).loss;
        assert!(
            (2.0 * pair.loss - separate).abs() < 1e-5,
            "{} vs {separate}",
            2.0 * pair.loss
        );
    }

    #[test]
    fn same_seed_gives_the_same_model() {
        let _serial = serial();
        let device = Device::flex();
        let config = small(CellKind::Lstm, Head::Classify { classes: 2 });
        let data = order_task(32, 3);
        let options = TrainOptions {
            epochs: 3,
            ..options()
        };
        let a = train(&config, &data, &[], &options, &device, |_| {}).expect("a");
        let b = train(&config, &data, &[], &options, &device, |_| {}).expect("b");
        let x = Tensor::<3>::random([2, 5, 6], burn::tensor::Distribution::Default, &device);
        let diff = (a.model.forward(x.clone(), None).0 - b.model.forward(x, None).0)
            .abs()
            .max()
            .into_scalar::<f32>();
        assert_eq!(diff, 0.0);
        assert_eq!(a.history.len(), 3);
        for (x, y) in a.history.iter().zip(&b.history) {
            assert_eq!(x.train_loss, y.train_loss);
        }
    }

    #[test]
    fn resuming_from_a_checkpoint_gives_the_uninterrupted_model() {
        let _serial = serial();
        let device = Device::flex();
        // With dropout: the masks of a resumed epoch must be the uninterrupted run's too.
        let config = small(CellKind::Lstm, Head::Classify { classes: 2 }).with_dropout(0.2);
        let (data, val) = (order_task(32, 3), order_task(8, 4));
        let dir = std::env::temp_dir().join(format!("temporal-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let with = |epochs, checkpoint: Option<&std::path::Path>| TrainOptions {
            epochs,
            checkpoint: checkpoint.map(std::path::Path::to_path_buf),
            ..options()
        };
        let straight = train(&config, &data, &val, &with(4, None), &device, |_| {}).expect("4");
        // A run killed after its second epoch (the checkpoint is written before the event).
        let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            train(&config, &data, &val, &with(4, Some(&dir)), &device, |e| {
                if let TrainEvent::Epoch(stats) = e {
                    assert!(stats.epoch < 2, "killed");
                }
            })
        }));
        assert!(killed.is_err());
        let resumed =
            train(&config, &data, &val, &with(4, Some(&dir)), &device, |_| {}).expect("resume");
        assert_eq!(resumed.resumed_from, 2);
        let losses = |h: &[EpochStats]| -> Vec<(f64, f64, f64)> {
            h.iter().map(|e| (e.lr, e.train_loss, e.val_loss)).collect()
        };
        assert_eq!(losses(&resumed.history), losses(&straight.history));
        let x = Tensor::<3>::random([2, 5, 6], burn::tensor::Distribution::Default, &device);
        let diff = (straight.model.forward(x.clone(), None).0 - resumed.model.forward(x, None).0)
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(diff < 1e-6, "resumed model differs by {diff}");
        let other = small(CellKind::Gru, Head::Classify { classes: 2 });
        let err = train(&other, &data, &val, &with(4, Some(&dir)), &device, |_| {});
        assert!(
            matches!(err, Err(Error::CheckpointConfig { .. })),
            "{err:?}"
        );
        // Nor another seed or other clips: neither would give the uninterrupted model.
        let reseeded = TrainOptions {
            seed: 8,
            ..with(4, Some(&dir))
        };
        let err = train(&config, &data, &val, &reseeded, &device, |_| {});
        assert!(matches!(err, Err(Error::CheckpointSeed { .. })), "{err:?}");
        let other_data = order_task(32, 5);
        let err = train(
            &config,
            &other_data,
            &val,
            &with(4, Some(&dir)),
            &device,
            |_| {},
        );
        assert!(matches!(err, Err(Error::CheckpointData { .. })), "{err:?}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn anticipate_learns_what_comes_next() {
        let _serial = serial();
        // Labels cycle 0,1,2,0,1,2 with a feature that says which; anticipating one step ahead
        // means predicting (current + 1) % 3, which a model can only do by learning the cycle.
        let device = Device::flex();
        let dim = 6;
        let seqs: Vec<Sequence> = (0..48)
            .map(|i| {
                let steps = 9;
                let labels: Vec<Option<usize>> = (0..steps).map(|t| Some((t + i) % 3)).collect();
                let mut features = vec![0f32; steps * dim];
                for (t, l) in labels.iter().enumerate() {
                    features[t * dim + l.unwrap_or(0)] = 1.0;
                }
                Sequence {
                    features,
                    steps,
                    target: Target::Steps(labels),
                }
            })
            .collect();
        let config = small(
            CellKind::Lstm,
            Head::Anticipate {
                classes: 3,
                horizon: 1,
            },
        );
        let trained = train(
            &config,
            &seqs[..32],
            &seqs[32..],
            &options(),
            &device,
            |_| {},
        )
        .expect("trains");
        let eval = evaluate(&trained.model, &seqs[32..], &device).expect("eval");
        assert!(eval.accuracy().unwrap_or(0.0) >= 0.95, "{eval:?}");
        // Every step but the last has a label one step later: 16 clips x 8 steps.
        assert_eq!(eval.confusion.map(|c| c.total()), Some(16 * 8));
    }

    #[test]
    fn forecast_beats_persistence_on_predictable_motion() {
        let _serial = serial();
        // A bump that moves one feature up per step: persistence is always wrong, the next
        // frame is fully predictable from the current one.
        let device = Device::flex();
        let dim = 6;
        let seqs: Vec<Sequence> = (0..40)
            .map(|i| {
                let steps = 8;
                let mut features = vec![0f32; steps * dim];
                for t in 0..steps {
                    features[t * dim + (t + i) % dim] = 1.0;
                }
                Sequence {
                    features,
                    steps,
                    target: Target::Unlabelled,
                }
            })
            .collect();
        let config = small(CellKind::Gru, Head::Forecast { ahead: 1 });
        let trained = train(
            &config,
            &seqs[..30],
            &seqs[30..],
            &options(),
            &device,
            |_| {},
        )
        .expect("trains");
        let forecast = evaluate(&trained.model, &seqs[30..], &device)
            .expect("eval")
            .forecast
            .expect("forecast error");
        assert_eq!(forecast.pairs, 10 * 7);
        assert!(
            forecast.model_mse < 0.25 * forecast.persistence_mse,
            "{forecast:?}"
        );
    }

    #[test]
    fn bad_sequences_are_named() {
        let _serial = serial();
        let device = Device::flex();
        let config = small(CellKind::Lstm, Head::Classify { classes: 2 });
        let mut data = order_task(8, 1);
        data[3].features.truncate(30);
        let err = train(&config, &data, &[], &options(), &device, |_| {});
        assert!(matches!(err, Err(Error::Shape { index: 3, .. })), "{err:?}");
        let mut data = order_task(8, 1);
        data[2].target = Target::Clip(5);
        let err = train(&config, &data, &[], &options(), &device, |_| {});
        assert!(
            matches!(
                err,
                Err(Error::Label {
                    index: 2,
                    label: 5,
                    ..
                })
            ),
            "{err:?}"
        );
        let err = train(&config, &[], &[], &options(), &device, |_| {});
        assert!(matches!(err, Err(Error::Empty)), "{err:?}");
        let forecast = small(CellKind::Lstm, Head::Forecast { ahead: 8 });
        let err = train(
            &forecast,
            &order_task(4, 1),
            &[],
            &options(),
            &device,
            |_| {},
        );
        assert!(matches!(err, Err(Error::TooShort { ahead: 8 })), "{err:?}");
    }
}

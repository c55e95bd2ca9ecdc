//! Training a clip classifier on sequences already in memory.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;

use crate::metrics::Confusion;
use crate::{TemporalConfig, TemporalModel};

/// One labelled clip: `steps` rows of `dim` features, row-major.
#[derive(Debug, Clone)]
pub struct Sequence {
    pub features: Vec<f32>,
    pub steps: usize,
    pub label: usize,
}

/// Optimisation settings.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch: usize,
    /// Peak learning rate of AdamW; cosine-decayed to a tenth over the epochs.
    pub lr: f64,
    pub weight_decay: f32,
    /// Gradients are rescaled so their global norm is at most this.
    pub clip_norm: f32,
    /// Stop after this many epochs without a better validation accuracy.
    pub patience: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch: 32,
            lr: 3e-3,
            weight_decay: 1e-2,
            clip_norm: 1.0,
            patience: 8,
        }
    }
}

/// Loss and accuracy of one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_accuracy: f64,
}

/// Errors of [`train_classifier`].
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("no training sequences")]
    Empty,
    #[error("sequence {index} has {got} values, expected {steps} steps x {dim} features")]
    Shape {
        index: usize,
        got: usize,
        steps: usize,
        dim: usize,
    },
    #[error(
        "all sequences in a run need the same number of steps ({expected}); sequence {index} has {got}"
    )]
    Length {
        index: usize,
        got: usize,
        expected: usize,
    },
}

/// Trains a classify-head model: cross-entropy at each clip's last step, AdamW with
/// gradient-norm clipping and a cosine learning-rate schedule, keeping the epoch with the best
/// validation accuracy (early stopping). Inputs are normalised with the training set's
/// per-feature mean and standard deviation, which become part of the model. The batch order is
/// drawn from `seed`, so the same seed on the CPU gives the same model.
pub fn train_classifier(
    config: &TemporalConfig,
    train: &[Sequence],
    val: &[Sequence],
    options: &TrainOptions,
    seed: u64,
    device: &Device,
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<(TemporalModel, Vec<EpochStats>), TrainError> {
    let dim = config.input_dim;
    let steps = train.first().ok_or(TrainError::Empty)?.steps;
    for (index, s) in train.iter().chain(val).enumerate() {
        if s.steps != steps {
            return Err(TrainError::Length {
                index,
                got: s.steps,
                expected: steps,
            });
        }
        if s.features.len() != s.steps * dim {
            return Err(TrainError::Shape {
                index,
                got: s.features.len(),
                steps: s.steps,
                dim,
            });
        }
    }
    let (mean, std) = feature_statistics(train, dim);
    let autodiff = device.clone().autodiff();
    let mut model = config.init(&autodiff).with_normalization(
        Tensor::from_floats(mean.as_slice(), &autodiff),
        Tensor::from_floats(std.as_slice(), &autodiff),
    );
    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(options.weight_decay)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(options.clip_norm)))
        .init();
    let loss_fn = CrossEntropyLossConfig::new().init(&autodiff);
    let mut rng = SplitMix64(seed);
    let mut history = Vec::new();
    let mut best: Option<(f64, TemporalModel)> = None;
    let mut since_best = 0;
    for epoch in 0..options.epochs {
        let progress = epoch as f64 / options.epochs.max(1) as f64;
        let lr = options.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
        let mut order: Vec<usize> = (0..train.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        let (mut loss_sum, mut correct) = (0.0, 0usize);
        for chunk in order.chunks(options.batch.max(1)) {
            let batch: Vec<&Sequence> = chunk.iter().map(|&i| &train[i]).collect();
            let (x, y) = stack(&batch, steps, dim, &autodiff);
            let logits = last_step(model.forward(x, None).0);
            let loss = loss_fn.forward(logits.clone(), y.clone());
            loss_sum += loss.clone().into_scalar::<f64>() * batch.len() as f64;
            correct += count_correct(logits, y);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
        }
        let val_accuracy = if val.is_empty() {
            correct as f64 / train.len() as f64
        } else {
            evaluate(&model.valid(), val, config.output_dim(), device).accuracy()
        };
        let stats = EpochStats {
            epoch: epoch + 1,
            train_loss: loss_sum / train.len() as f64,
            train_accuracy: correct as f64 / train.len() as f64,
            val_accuracy,
        };
        on_epoch(&stats);
        history.push(stats);
        if best.as_ref().is_none_or(|(acc, _)| val_accuracy > *acc) {
            best = Some((val_accuracy, model.clone()));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= options.patience {
                break;
            }
        }
    }
    let model = best.map_or(model, |(_, m)| m);
    Ok((model.valid(), history))
}

/// The confusion matrix of `model`'s last-step predictions on `sequences`.
pub fn evaluate(
    model: &TemporalModel,
    sequences: &[Sequence],
    classes: usize,
    device: &Device,
) -> Confusion {
    let mut pairs = Vec::with_capacity(sequences.len());
    for chunk in sequences.chunks(64) {
        let batch: Vec<&Sequence> = chunk.iter().collect();
        let steps = batch[0].steps;
        let dim = batch[0].features.len() / steps.max(1);
        let (x, _) = stack(&batch, steps, dim, device);
        let predicted = last_step(model.forward(x, None).0).argmax(1);
        let predicted: Vec<i64> = predicted.into_data().iter::<i64>().collect();
        pairs.extend(
            batch
                .iter()
                .zip(predicted)
                .map(|(s, p)| (s.label, p as usize)),
        );
    }
    Confusion::from_pairs(classes, pairs)
}

fn stack(
    batch: &[&Sequence],
    steps: usize,
    dim: usize,
    device: &Device,
) -> (Tensor<3>, Tensor<1, Int>) {
    let features: Vec<f32> = batch
        .iter()
        .flat_map(|s| s.features.iter().copied())
        .collect();
    let labels: Vec<i64> = batch.iter().map(|s| s.label as i64).collect();
    (
        Tensor::from_data(TensorData::new(features, [batch.len(), steps, dim]), device),
        Tensor::from_data(TensorData::new(labels, [batch.len()]), device),
    )
}

fn last_step(outputs: Tensor<3>) -> Tensor<2> {
    let [b, t, c] = outputs.dims();
    outputs.slice([0..b, t - 1..t, 0..c]).reshape([b, c])
}

fn count_correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> usize {
    let [b, _] = logits.dims();
    let hits = logits.argmax(1).reshape([b]).equal(labels).int().sum();
    hits.into_scalar::<i64>() as usize
}

fn feature_statistics(train: &[Sequence], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut sum, mut sq, mut n) = (vec![0f64; dim], vec![0f64; dim], 0usize);
    for s in train {
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

/// Small, seedable, good-enough generator for shuffling (no crate for one function).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CellKind, Head};

    /// Class 0: a bump that moves up through the features over time; class 1: the same frames
    /// in reverse order. The mean over time is identical, so only order tells them apart.
    fn order_task(n: usize, seed: u64) -> Vec<Sequence> {
        let (steps, dim) = (6, 6);
        let mut rng = SplitMix64(seed);
        (0..n)
            .map(|i| {
                let label = i % 2;
                let mut features = vec![0f32; steps * dim];
                for t in 0..steps {
                    let pos = if label == 0 { t } else { steps - 1 - t };
                    for j in 0..dim {
                        let noise = (rng.next() % 1000) as f32 / 1000.0 * 0.2 - 0.1;
                        features[t * dim + j] = if j == pos { 1.0 } else { 0.0 } + noise;
                    }
                }
                Sequence {
                    features,
                    steps,
                    label,
                }
            })
            .collect()
    }

    #[test]
    fn lstm_learns_an_order_only_task_and_rejects_ragged_input() {
        let device = Device::flex();
        let config = TemporalConfig::new(CellKind::Lstm, Head::Classify { classes: 2 })
            .with_input_dim(6)
            .with_projection(16)
            .with_hidden(16)
            .with_dropout(0.0);
        let (train, val) = (order_task(64, 1), order_task(32, 2));
        let options = TrainOptions {
            epochs: 40,
            batch: 16,
            lr: 1e-2,
            ..Default::default()
        };
        let (model, history) =
            train_classifier(&config, &train, &val, &options, 7, &device, |_| {}).expect("trains");
        let accuracy = evaluate(&model, &val, 2, &device).accuracy();
        assert!(
            accuracy >= 0.95,
            "val accuracy {accuracy}, history {history:?}"
        );

        let mut ragged = train.clone();
        ragged[3].steps = 5;
        ragged[3].features.truncate(30);
        let err = train_classifier(&config, &ragged, &val, &options, 7, &device, |_| {});
        assert!(
            matches!(err, Err(TrainError::Length { index: 3, .. })),
            "{err:?}"
        );
    }
}

//! The order-blind baseline: a clip's features averaged over time, into a linear classifier.
//!
//! Whatever it gets right needs no notion of order; the gap between it and the recurrent head
//! is what modelling time adds on a user's data.

use burn::module::Param;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;

use crate::error::{Error, Result};
use crate::metrics::Confusion;
use crate::sequence::{Sequence, Target};

/// Mean-pooled features, normalised with the training clips' statistics, into a linear layer.
#[derive(Module, Debug)]
pub struct MeanPoolBaseline {
    mean: Param<Tensor<1>>,
    std: Param<Tensor<1>>,
    linear: Linear,
}

impl MeanPoolBaseline {
    /// An untrained baseline (identity normalisation), e.g. to load saved weights into.
    pub fn init(input_dim: usize, classes: usize, device: &Device) -> Self {
        Self {
            mean: Param::from_tensor(Tensor::zeros([input_dim], device)).set_require_grad(false),
            std: Param::from_tensor(Tensor::ones([input_dim], device)).set_require_grad(false),
            linear: LinearConfig::new(input_dim, classes).init(device),
        }
    }

    /// Class logits `[batch, classes]` from mean-pooled clip features `[batch, input_dim]`.
    pub fn forward(&self, pooled: Tensor<2>) -> Tensor<2> {
        let d = self.mean.val().dims()[0];
        let x = (pooled - self.mean.val().reshape([1, d])) / self.std.val().reshape([1, d]);
        self.linear.forward(x)
    }

    /// The confusion matrix on labelled clips.
    pub fn evaluate(&self, clips: &[Sequence], classes: usize, device: &Device) -> Confusion {
        let d = self.mean.val().dims()[0];
        let (pooled, labels) = pool(clips, d);
        if labels.is_empty() {
            return Confusion::new(classes);
        }
        let x = Tensor::from_data(TensorData::new(pooled, [labels.len(), d]), device);
        let predicted: Vec<i64> = self
            .forward(x)
            .argmax(1)
            .into_data()
            .iter::<i64>()
            .collect();
        Confusion::from_pairs(
            classes,
            labels
                .into_iter()
                .zip(predicted.into_iter().map(|p| p as usize)),
        )
    }
}

/// Fits the baseline on labelled clips (full-batch AdamW with weight decay), keeping the step
/// with the best validation accuracy (the training accuracy when there is no validation set).
pub fn train_baseline(
    train: &[Sequence],
    val: &[Sequence],
    input_dim: usize,
    classes: usize,
    seed: u64,
    device: &Device,
) -> Result<MeanPoolBaseline> {
    let (pooled, labels) = pool(train, input_dim);
    if labels.is_empty() {
        return Err(Error::Empty);
    }
    let n = labels.len();
    let (mean, std) = column_statistics(&pooled, input_dim);
    device.seed(seed);
    let autodiff = device.clone().autodiff();
    let mut model = MeanPoolBaseline::init(input_dim, classes, &autodiff);
    model.mean =
        Param::from_tensor(Tensor::from_floats(mean.as_slice(), &autodiff)).set_require_grad(false);
    model.std =
        Param::from_tensor(Tensor::from_floats(std.as_slice(), &autodiff)).set_require_grad(false);
    let x = Tensor::<2>::from_data(TensorData::new(pooled, [n, input_dim]), &autodiff);
    let y = Tensor::<1, Int>::from_data(
        TensorData::new(labels.iter().map(|&l| l as i64).collect(), [n]),
        &autodiff,
    );
    let loss_fn = CrossEntropyLossConfig::new().init(&autodiff);
    let mut optimizer = AdamWConfig::new().with_weight_decay(1e-2).init();
    let held_out = if val.is_empty() { train } else { val };
    let mut best: Option<(f64, MeanPoolBaseline)> = None;
    for step in 0..300 {
        let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-2, model, grads);
        if step % 10 == 9 {
            let accuracy = model.valid().evaluate(held_out, classes, device).accuracy();
            if best.as_ref().is_none_or(|(b, _)| accuracy > *b) {
                best = Some((accuracy, model.clone()));
            }
        }
    }
    Ok(best.map_or(model, |(_, m)| m).valid())
}

/// Clip-level means `[clips, dim]` (row-major) and labels of the clips labelled as a whole.
fn pool(clips: &[Sequence], dim: usize) -> (Vec<f32>, Vec<usize>) {
    let mut pooled = Vec::new();
    let mut labels = Vec::new();
    for clip in clips {
        let Target::Clip(label) = clip.target else {
            continue;
        };
        let mut mean = vec![0f32; dim];
        for row in clip.features.chunks_exact(dim) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        let steps = clip.steps.max(1) as f32;
        pooled.extend(mean.into_iter().map(|m| m / steps));
        labels.push(label);
    }
    (pooled, labels)
}

fn column_statistics(rows: &[f32], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let n = (rows.len() / dim).max(1) as f64;
    let mut mean = vec![0f64; dim];
    for row in rows.chunks_exact(dim) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += f64::from(*v) / n;
        }
    }
    let mut var = vec![0f64; dim];
    for row in rows.chunks_exact(dim) {
        for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (f64::from(*v) - m).powi(2) / n;
        }
    }
    (
        mean.iter().map(|&m| m as f32).collect(),
        var.iter().map(|&v| (v.sqrt() as f32).max(1e-6)).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_separates_what_the_mean_shows_and_not_what_only_order_shows() {
        let _serial = crate::train::tests::serial();
        let device = Device::flex();
        // Order-only task: the mean over time is the same for both classes.
        let order = crate::train::tests::order_task(64, 1);
        let val = crate::train::tests::order_task(64, 2);
        let model = train_baseline(&order, &[], 6, 2, 1, &device).expect("trains");
        let accuracy = model.evaluate(&val, 2, &device).accuracy();
        assert!(
            accuracy < 0.7,
            "order-only task: baseline accuracy {accuracy}"
        );
        // Same clips, but class 1 has every feature shifted: the mean tells them apart.
        let shifted: Vec<Sequence> = order
            .iter()
            .map(|s| {
                let mut s = s.clone();
                if s.target == Target::Clip(1) {
                    s.features.iter_mut().for_each(|v| *v += 0.5);
                }
                s
            })
            .collect();
        let model = train_baseline(&shifted, &[], 6, 2, 1, &device).expect("trains");
        assert_eq!(model.evaluate(&shifted, 2, &device).accuracy(), 1.0);
    }
}

//! Late fusion: one head per input stream, their class log-probabilities added with weights
//! fitted on clips none of them trained on (stacking, as two-stream networks combine an
//! appearance and a motion network).
//!
//! Heads trained on two streams side by side fit whichever stream tells the training clips
//! apart most easily. When that stream does not carry over to new footage (appearance features
//! of a few training videos, for a camera-motion head), the joint head fails on new footage even
//! though the other stream alone would not. Trained apart, each branch learns its own stream;
//! the weights, chosen by the log-loss on held-out clips, say how far each one carries over.
//! A weight of zero is an answer too: that stream did not help on footage the heads never saw.

use std::ops::Range;

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::error::{Error, Result};
use crate::metrics::Confusion;
use crate::model::{Head, State, TemporalModel};
use crate::sequence::{Sequence, Target};
use crate::train::Evaluation;

/// The weights [`fit_weights`] tries for each branch: 0 to 2 in steps of 0.1 (above 1 a
/// branch's probabilities are sharpened, below softened).
pub const WEIGHT_GRID: [f64; 21] = [
    0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8,
    1.9, 2.0,
];

/// One head of a [`LateFusion`]: the columns of a step it reads, and its weight.
#[derive(Debug, Clone)]
pub struct Branch {
    /// The values of each step this branch reads (its model's `input_dim` of them).
    pub columns: Range<usize>,
    pub model: TemporalModel,
    pub weight: f64,
}

/// Several classify or anticipate heads read as one: at each step, the log-probabilities of
/// each branch times its weight, summed and normalised again.
#[derive(Debug, Clone)]
pub struct LateFusion {
    branches: Vec<Branch>,
    head: Head,
}

impl LateFusion {
    /// Checks that the branches can be fused: at least one; every head classifies or
    /// anticipates the same classes (and horizon); each reads as many columns as its model
    /// takes; the weights are finite, not negative, not all zero.
    pub fn new(branches: Vec<Branch>) -> Result<Self> {
        let first = branches
            .first()
            .ok_or_else(|| Error::Fusion("no branches".into()))?;
        let head = first.model.config().head;
        if matches!(head, Head::Forecast { .. }) {
            return Err(Error::Fusion(
                "forecast heads are not fused (their target is the whole step)".into(),
            ));
        }
        for (i, b) in branches.iter().enumerate() {
            let config = b.model.config();
            if config.head != head {
                return Err(Error::Fusion(format!(
                    "branch {i} has head {:?}, branch 0 {head:?}",
                    config.head
                )));
            }
            if b.columns.len() != config.input_dim {
                return Err(Error::Fusion(format!(
                    "branch {i} reads columns {:?}, but its model takes {} values a step",
                    b.columns, config.input_dim
                )));
            }
            if !(b.weight.is_finite() && b.weight >= 0.0) {
                return Err(Error::Fusion(format!(
                    "branch {i} has weight {}, not a finite number of at least 0",
                    b.weight
                )));
            }
        }
        if branches.iter().all(|b| b.weight == 0.0) {
            return Err(Error::Fusion("every branch has weight 0".into()));
        }
        Ok(Self { branches, head })
    }

    pub fn branches(&self) -> &[Branch] {
        &self.branches
    }

    /// The head every branch shares.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Values per step the fused model reads: up to the last column any branch reads.
    pub fn input_dim(&self) -> usize {
        self.branches
            .iter()
            .map(|b| b.columns.end)
            .max()
            .unwrap_or(0)
    }

    fn classes(&self) -> usize {
        match self.head {
            Head::Classify { classes } | Head::Anticipate { classes, .. } => classes,
            Head::Forecast { .. } => 0,
        }
    }

    /// Steps `[batch, time, input_dim]` (and each branch's state after a previous chunk) to
    /// the fused log-probabilities `[batch, time, classes]` and each branch's state after the
    /// last step. Chunked calls passing the states along give the same as one call.
    pub fn forward(&self, steps: Tensor<3>, state: Option<Vec<State>>) -> (Tensor<3>, Vec<State>) {
        let [b, t, _] = steps.dims();
        let mut states = state.map(Vec::into_iter);
        let mut next = Vec::with_capacity(self.branches.len());
        let mut sum = Tensor::<3>::zeros([b, t, self.classes()], &steps.device());
        for branch in &self.branches {
            let x = steps.clone().slice([0..b, 0..t, branch.columns.clone()]);
            let (logits, s) = branch
                .model
                .forward(x, states.as_mut().and_then(Iterator::next));
            next.push(s);
            sum = sum + log_softmax(logits, 2) * branch.weight;
        }
        (log_softmax(sum, 2), next)
    }

    /// Loss and metrics on `sequences` (steps of [`Self::input_dim`] values).
    pub fn evaluate(&self, sequences: &[Sequence], device: &Device) -> Result<Evaluation> {
        let scored = self
            .branches
            .iter()
            .map(|b| Scored::of(&b.model, b.columns.clone(), sequences, device))
            .collect::<Result<Vec<_>>>()?;
        let weights: Vec<f64> = self.branches.iter().map(|b| b.weight).collect();
        Ok(combine(&scored, &weights)?.evaluation())
    }
}

/// The log-probabilities a head gives each target of some sequences (classify: a clip's last
/// step; anticipate: every step whose label `horizon` later is known), and the targets' labels:
/// what fusion weights are fitted on and fused scores computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// `targets x classes`, row-major.
    pub log_probs: Vec<f32>,
    pub labels: Vec<usize>,
    pub classes: usize,
}

impl Scored {
    /// `model` (in inference mode) reading `columns` of each step of `sequences`.
    pub fn of(
        model: &TemporalModel,
        columns: Range<usize>,
        sequences: &[Sequence],
        device: &Device,
    ) -> Result<Self> {
        let config = model.config();
        let (classes, horizon) = match config.head {
            Head::Classify { classes } => (classes, None),
            Head::Anticipate { classes, horizon } => (classes, Some(horizon)),
            Head::Forecast { .. } => {
                return Err(Error::Fusion(
                    "a forecast head has no classes to fuse".into(),
                ));
            }
        };
        let mut out = Self {
            log_probs: Vec::new(),
            labels: Vec::new(),
            classes,
        };
        for (c, chunk) in sequences.chunks(64).enumerate() {
            let (x, t) = pad_columns(chunk, &columns, device)?;
            let (logits, _) = model.forward(x, None);
            let values: Vec<f32> = log_softmax(logits, 2)
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| Error::Fusion(format!("reading the outputs: {e:?}")))?;
            for (i, s) in chunk.iter().enumerate() {
                let mut take = |step: usize, label: usize| {
                    let at = (i * t + step) * classes;
                    out.log_probs.extend_from_slice(&values[at..at + classes]);
                    out.labels.push(label);
                };
                match (&s.target, horizon) {
                    (Target::Clip(label), None) => take(s.steps - 1, *label),
                    (Target::Steps(labels), Some(h)) => {
                        for step in 0..s.steps.saturating_sub(h) {
                            if let Some(Some(label)) = labels.get(step + h) {
                                take(step, *label);
                            }
                        }
                    }
                    _ => {
                        let task = if horizon.is_some() {
                            "anticipate"
                        } else {
                            "classify"
                        };
                        return Err(Error::Target {
                            index: c * 64 + i,
                            task,
                        });
                    }
                }
            }
        }
        if let Some((index, &label)) = out.labels.iter().enumerate().find(|(_, l)| **l >= classes) {
            // The target's index: sequences and targets are one to one for classify.
            return Err(Error::Label {
                index,
                label,
                classes,
            });
        }
        Ok(out)
    }

    /// How many targets.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Mean negative log-probability of the true class (the cross-entropy).
    pub fn loss(&self) -> f64 {
        if self.is_empty() {
            return f64::NAN;
        }
        let total: f64 = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, &l)| -f64::from(self.log_probs[i * self.classes + l]))
            .sum();
        total / self.len() as f64
    }

    /// Loss and confusion (the most probable class predicted).
    pub fn evaluation(&self) -> Evaluation {
        let pairs = self.labels.iter().enumerate().map(|(i, &truth)| {
            let row = &self.log_probs[i * self.classes..(i + 1) * self.classes];
            let predicted = row
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (c, &v)| {
                    if v > best.1 { (c, v) } else { best }
                })
                .0;
            (truth, predicted)
        });
        Evaluation {
            loss: self.loss(),
            confusion: Some(Confusion::from_pairs(self.classes, pairs)),
            forecast: None,
        }
    }
}

/// The weighted sum of several heads' log-probabilities on the same targets, normalised again
/// (a log-softmax per target). An error unless every head scored the same targets, with as
/// many classes, and there is a weight for each.
pub fn combine(scored: &[Scored], weights: &[f64]) -> Result<Scored> {
    let Some(first) = scored.first() else {
        return Err(Error::Fusion("nothing to combine".into()));
    };
    let aligned = scored.iter().all(|s| {
        s.labels == first.labels
            && s.classes == first.classes
            && s.log_probs.len() == s.labels.len() * s.classes
    });
    if !aligned || weights.len() != scored.len() {
        return Err(Error::Fusion(
            "the heads' scores are not of the same targets and classes, one weight each".into(),
        ));
    }
    let classes = first.classes;
    let mut log_probs = Vec::with_capacity(first.log_probs.len());
    let mut row = vec![0f64; classes];
    for i in 0..first.len() {
        row.iter_mut().for_each(|v| *v = 0.0);
        for (s, &w) in scored.iter().zip(weights) {
            if w == 0.0 {
                continue;
            }
            for (c, v) in row.iter_mut().enumerate() {
                *v += w * f64::from(s.log_probs[i * classes + c]);
            }
        }
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let norm = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        log_probs.extend(row.iter().map(|v| (v - norm) as f32));
    }
    Ok(Scored {
        log_probs,
        labels: first.labels.clone(),
        classes,
    })
}

/// The weights (one per head, each from [`WEIGHT_GRID`], not all zero) whose [`combine`]d
/// log-probabilities give the lowest loss on these targets, and that loss. Of equal losses the
/// first found wins, the grid walked with the last head's weight changing fastest. Every
/// combination is tried: meant for the two or three streams a step has.
pub fn fit_weights(scored: &[Scored]) -> Result<(Vec<f64>, f64)> {
    let n = scored.len();
    combine(scored, &vec![1.0; n])?;
    let mut index = vec![0usize; n];
    let mut best = (vec![1.0; n], f64::INFINITY);
    loop {
        let weights: Vec<f64> = index.iter().map(|&i| WEIGHT_GRID[i]).collect();
        if weights.iter().any(|&w| w > 0.0) {
            let loss = combine(scored, &weights)?.loss();
            if loss < best.1 {
                best = (weights, loss);
            }
        }
        // The next combination, the last digit fastest.
        let mut digit = n;
        loop {
            if digit == 0 {
                return Ok(best);
            }
            digit -= 1;
            index[digit] += 1;
            if index[digit] < WEIGHT_GRID.len() {
                break;
            }
            index[digit] = 0;
        }
    }
}

/// Each sequence's `columns`, as sequences of their own (what a branch trains on).
pub fn columns(sequences: &[Sequence], dim: usize, columns: Range<usize>) -> Vec<Sequence> {
    sequences
        .iter()
        .map(|s| Sequence {
            features: s
                .features
                .chunks_exact(dim)
                .flat_map(|row| row[columns.clone()].iter().copied())
                .collect(),
            steps: s.steps,
            target: s.target.clone(),
        })
        .collect()
}

/// `columns` of each step of `batch`, zero-padded to the longest, `[batch, time, columns]`,
/// and the time.
fn pad_columns(
    batch: &[Sequence],
    columns: &Range<usize>,
    device: &Device,
) -> Result<(Tensor<3>, usize)> {
    let t = batch.iter().map(|s| s.steps).max().unwrap_or(1).max(1);
    let width = columns.len();
    let mut values = vec![0f32; batch.len() * t * width];
    for (i, s) in batch.iter().enumerate() {
        if s.steps == 0 {
            return Err(Error::NoSteps { index: i });
        }
        let dim = s.features.len() / s.steps;
        if dim * s.steps != s.features.len() || columns.end > dim {
            return Err(Error::Shape {
                index: i,
                got: s.features.len(),
                steps: s.steps,
                dim: columns.end,
            });
        }
        for (step, row) in s.features.chunks_exact(dim).enumerate() {
            values[(i * t + step) * width..][..width].copy_from_slice(&row[columns.clone()]);
        }
    }
    Ok((
        Tensor::from_data(TensorData::new(values, [batch.len(), t, width]), device),
        t,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CellKind, TemporalConfig};

    fn scored(rows: &[[f32; 2]], labels: &[usize]) -> Scored {
        let log_probs = rows
            .iter()
            .flat_map(|r| {
                let norm = r.iter().map(|v| v.exp()).sum::<f32>().ln();
                r.iter().map(move |v| v - norm)
            })
            .collect();
        Scored {
            log_probs,
            labels: labels.to_vec(),
            classes: 2,
        }
    }

    #[test]
    fn the_weights_silence_a_head_that_guesses_and_keep_one_that_knows() {
        let labels = [0, 1, 0, 1, 1, 0];
        // Right with confidence on every target.
        let knows = scored(
            &[
                [2.0, 0.0],
                [0.0, 2.0],
                [2.0, 0.0],
                [0.0, 2.0],
                [0.0, 2.0],
                [2.0, 0.0],
            ],
            &labels,
        );
        // Confidently wrong half the time.
        let guesses = scored(
            &[
                [3.0, 0.0],
                [3.0, 0.0],
                [0.0, 3.0],
                [0.0, 3.0],
                [3.0, 0.0],
                [0.0, 3.0],
            ],
            &labels,
        );
        let (weights, loss) = fit_weights(&[guesses.clone(), knows.clone()]).expect("aligned");
        assert_eq!(weights[0], 0.0, "{weights:?}");
        assert!(
            weights[1] > 1.0,
            "a head that is always right is sharpened: {weights:?}"
        );
        assert!(loss < knows.loss(), "{loss} vs {}", knows.loss());
        let fused = combine(&[guesses, knows], &weights)
            .expect("aligned")
            .evaluation();
        assert_eq!(fused.accuracy(), Some(1.0));
    }

    #[test]
    fn combining_one_head_at_weight_one_changes_nothing() {
        let s = scored(&[[0.3, -1.0], [2.0, 0.5]], &[1, 0]);
        let back = combine(std::slice::from_ref(&s), &[1.0]).expect("aligned");
        for (a, b) in s.log_probs.iter().zip(&back.log_probs) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        // Two heads that agree, each at half weight, are that head.
        let halves = combine(&[s.clone(), s.clone()], &[0.5, 0.5]).expect("aligned");
        // Scores of other targets do not combine.
        let other = scored(&[[0.3, -1.0], [2.0, 0.5]], &[0, 0]);
        assert!(combine(&[s.clone(), other], &[1.0, 1.0]).is_err());
        assert!(combine(std::slice::from_ref(&s), &[1.0, 1.0]).is_err());
        for (a, b) in s.log_probs.iter().zip(&halves.log_probs) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    fn branch(columns: Range<usize>, weight: f64, cell: CellKind, device: &Device) -> Branch {
        let model = TemporalConfig::new(cell, Head::Classify { classes: 3 })
            .with_input_dim(columns.len())
            .with_projection(6)
            .with_hidden(5)
            .init(device);
        Branch {
            columns,
            model,
            weight,
        }
    }

    #[test]
    fn the_fused_forward_is_the_weighted_branches_chunked_or_whole() -> Result<()> {
        let device = Device::flex();
        let fused = LateFusion::new(vec![
            branch(0..4, 0.7, CellKind::Lstm, &device),
            branch(4..7, 1.3, CellKind::Gru, &device),
        ])?;
        assert_eq!(fused.input_dim(), 7);
        let x = Tensor::<3>::random([2, 5, 7], burn::tensor::Distribution::Default, &device);
        let (whole, _) = fused.forward(x.clone(), None);
        let (a, state) = fused.forward(x.clone().slice([0..2, 0..2, 0..7]), None);
        let (b, _) = fused.forward(x.clone().slice([0..2, 2..5, 0..7]), Some(state));
        let chunked = Tensor::cat(vec![a, b], 1);
        let diff = (whole.clone() - chunked).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "chunked differs by {diff}");
        // By hand: each branch on its own columns.
        let by_hand =
            fused
                .branches()
                .iter()
                .fold(Tensor::<3>::zeros([2, 5, 3], &device), |acc, br| {
                    let (logits, _) = br
                        .model
                        .forward(x.clone().slice([0..2, 0..5, br.columns.clone()]), None);
                    acc + log_softmax(logits, 2) * br.weight
                });
        let diff = (whole - log_softmax(by_hand, 2))
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(diff < 1e-5, "differs from the branches by hand by {diff}");
        Ok(())
    }

    #[test]
    fn evaluate_scores_the_last_step_of_each_clip_as_the_forward_does() -> Result<()> {
        let device = Device::flex();
        let fused = LateFusion::new(vec![
            branch(0..2, 1.0, CellKind::Rnn, &device),
            branch(2..5, 0.4, CellKind::Lstm, &device),
        ])?;
        let sequences: Vec<Sequence> = (0..5)
            .map(|i| {
                let steps = 2 + i;
                Sequence {
                    features: (0..steps * 5)
                        .map(|v| ((v * 7 + i) % 11) as f32 / 5.0)
                        .collect(),
                    steps,
                    target: Target::Clip(i % 3),
                }
            })
            .collect();
        let evaluation = fused.evaluate(&sequences, &device)?;
        let mut loss = 0.0;
        for s in &sequences {
            let x = Tensor::<3>::from_data(
                TensorData::new(s.features.clone(), [1, s.steps, 5]),
                &device,
            );
            let (lp, _) = fused.forward(x, None);
            let values = lp.into_data().try_to_vec::<f32>().expect("values");
            let Target::Clip(label) = s.target else {
                unreachable!()
            };
            loss -= f64::from(values[(s.steps - 1) * 3 + label]);
        }
        loss /= sequences.len() as f64;
        assert!(
            (evaluation.loss - loss).abs() < 1e-5,
            "{} vs {loss}",
            evaluation.loss
        );
        Ok(())
    }

    #[test]
    fn one_branch_at_weight_one_scores_as_the_training_loop_does_anticipate_too() -> Result<()> {
        let device = Device::flex();
        for head in [
            Head::Classify { classes: 3 },
            Head::Anticipate {
                classes: 3,
                horizon: 2,
            },
        ] {
            let model = TemporalConfig::new(CellKind::Gru, head.clone())
                .with_input_dim(4)
                .with_projection(6)
                .with_hidden(5)
                .init(&device);
            let sequences: Vec<Sequence> = (0..70)
                .map(|i| {
                    let steps = 3 + i % 5;
                    Sequence {
                        features: (0..steps * 4)
                            .map(|v| ((v * 5 + i) % 9) as f32 / 4.0)
                            .collect(),
                        steps,
                        target: match head {
                            Head::Classify { .. } => Target::Clip(i % 3),
                            _ => Target::Steps(
                                (0..steps)
                                    .map(|s| (s % 3 != 1).then_some((s + i) % 3))
                                    .collect(),
                            ),
                        },
                    }
                })
                .collect();
            let fused = LateFusion::new(vec![Branch {
                columns: 0..4,
                model: model.clone(),
                weight: 1.0,
            }])?;
            let (a, b) = (
                fused.evaluate(&sequences, &device)?,
                crate::train::evaluate(&model, &sequences, &device)?,
            );
            assert!(
                (a.loss - b.loss).abs() < 1e-5,
                "{head:?}: {} vs {}",
                a.loss,
                b.loss
            );
            assert_eq!(a.confusion, b.confusion, "{head:?}");
        }
        Ok(())
    }

    #[test]
    fn branches_that_cannot_be_fused_are_refused() {
        let device = Device::flex();
        assert!(LateFusion::new(Vec::new()).is_err());
        assert!(LateFusion::new(vec![branch(0..3, 1.0, CellKind::Lstm, &device)]).is_ok());
        let mut wrong_width = branch(0..3, 1.0, CellKind::Lstm, &device);
        wrong_width.columns = 0..4;
        assert!(LateFusion::new(vec![wrong_width]).is_err());
        assert!(LateFusion::new(vec![branch(0..3, 0.0, CellKind::Lstm, &device)]).is_err());
        assert!(LateFusion::new(vec![branch(0..3, f64::NAN, CellKind::Lstm, &device)]).is_err());
    }
}

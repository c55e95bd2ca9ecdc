//! A trained temporal head stepping along a video: features in as they arrive, class
//! probabilities or a forecast (and the surprise of each step) out, state carried from batch to
//! batch so memory stays flat however long the video.

use std::collections::VecDeque;
use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use temporal::State;

use crate::hash::{file_hash, hash_bytes};
use crate::model_dir::Task;
use crate::model_dir::{HeadModel, ModelCard};

/// The forecaster shipped in `models/forecaster/` (see its README), built into the binary so
/// `pipeline run` says something about time out of the box.
const DEFAULT_CARD: &str = include_str!("../../../models/forecaster/config.json");
const DEFAULT_WEIGHTS: &[u8] = include_bytes!("../../../models/forecaster/model.safetensors");

/// What the head says about one step.
#[derive(Debug, Clone, Default)]
pub struct StepOutput {
    /// classify / anticipate: a probability per class of the card.
    pub probabilities: Option<Vec<f32>>,
    /// forecast: the raw embedding expected `horizon` later.
    pub forecast: Option<Vec<f32>>,
    /// forecast: how far this step's embedding is from what was forecast for it (mean squared
    /// difference per normalised feature); `None` until the first forecast comes due.
    pub surprise: Option<f64>,
}

#[derive(Debug)]
pub struct StreamingHead {
    pub card: ModelCard,
    /// Where the head came from, for summaries.
    pub source: String,
    /// A hash of the head's weights: what outputs made with it depend on.
    pub fingerprint: u64,
    model: HeadModel,
    device: Device,
    /// Each branch's state (one for a head that is not fused).
    state: Option<Vec<State>>,
    /// Forecasts made for steps not seen yet, oldest first (forecast heads).
    pending: VecDeque<Vec<f32>>,
}

impl StreamingHead {
    /// The head saved in `dir`, or the built-in forecaster. It runs on the CPU: one step of a
    /// small recurrent network is cheaper there than a round trip to a GPU.
    pub fn load(dir: Option<&Path>) -> Result<Self> {
        let device = Device::flex();
        let (card, model, source, fingerprint) = match dir {
            Some(dir) => {
                let card = ModelCard::open(dir)?;
                let model = HeadModel::load(dir, &card, &device)?;
                let fingerprint = weights_fingerprint(dir, &card)?;
                (card, model, dir.display().to_string(), fingerprint)
            }
            None => {
                let card = ModelCard::parse(DEFAULT_CARD)
                    .context("the built-in forecaster's config.json")?;
                let model = temporal::store::load_bytes(
                    DEFAULT_WEIGHTS,
                    &card.model,
                    &device,
                    Path::new("built-in forecaster"),
                )?;
                let source = "built-in forecaster (models/forecaster)".to_string();
                (
                    card,
                    HeadModel::Single(Box::new(model)),
                    source,
                    hash_bytes(DEFAULT_WEIGHTS),
                )
            }
        };
        if card.model.input_dim != card.inputs.dim() {
            bail!(
                "{source}: config.json's model.input_dim is {}, but its inputs ({}) give {} values a step",
                card.model.input_dim,
                card.inputs.name(),
                card.inputs.dim()
            );
        }
        Ok(Self {
            card,
            source,
            fingerprint,
            model,
            device,
            state: None,
            pending: VecDeque::new(),
        })
    }

    /// The same head with no video seen, for another video at the same time.
    pub fn fresh(&self) -> Self {
        Self {
            card: self.card.clone(),
            source: self.source.clone(),
            fingerprint: self.fingerprint,
            model: self.model.clone(),
            device: self.device.clone(),
            state: None,
            pending: VecDeque::new(),
        }
    }

    /// Forgets the video so far (before the next one).
    pub fn reset(&mut self) {
        self.state = None;
        self.pending.clear();
    }

    /// Steps through `n` rows of features (row-major, `n x dim`).
    pub fn step(&mut self, features: &[f32], n: usize) -> Result<Vec<StepOutput>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let dim = features.len() / n;
        let x = Tensor::<3>::from_data(
            TensorData::new(features.to_vec(), [1, n, dim]),
            &self.device,
        );
        let state = self.state.take();
        let model = match &self.model {
            HeadModel::Late(fused) => {
                let (log_probs, state) = fused.forward(x, state);
                self.state = Some(state);
                return Ok(rows(read(log_probs.exp())?, n));
            }
            HeadModel::Single(model) => model,
        };
        let state = state.and_then(|s| s.into_iter().next());
        match self.card.task() {
            Task::Classify | Task::Anticipate => {
                let (logits, state) = model.forward(x, state);
                self.state = Some(vec![state]);
                Ok(rows(read(softmax(logits, 2))?, n))
            }
            Task::Forecast => {
                let ahead = self.card.horizon_steps.max(1);
                let (forecast, state) = model.forecast(x, state);
                self.state = Some(vec![state]);
                let forecast = read(forecast)?;
                let mut due = Vec::new();
                let mut outputs = Vec::with_capacity(n);
                for (i, row) in forecast.chunks_exact(dim).enumerate() {
                    if self.pending.len() == ahead
                        && let Some(expected) = self.pending.pop_front()
                    {
                        due.push((i, expected));
                    }
                    self.pending.push_back(row.to_vec());
                    outputs.push(StepOutput {
                        forecast: Some(row.to_vec()),
                        ..StepOutput::default()
                    });
                }
                if !due.is_empty() {
                    let m = due.len();
                    let arrived: Vec<f32> = due
                        .iter()
                        .flat_map(|(i, _)| features[i * dim..(i + 1) * dim].iter().copied())
                        .collect();
                    let expected: Vec<f32> =
                        due.iter().flat_map(|(_, e)| e.iter().copied()).collect();
                    let tensor = |v: Vec<f32>| {
                        Tensor::<2>::from_data(TensorData::new(v, [m, dim]), &self.device)
                    };
                    let surprise = read(model.surprise(tensor(arrived), tensor(expected)))?;
                    for ((i, _), s) in due.iter().zip(surprise) {
                        outputs[*i].surprise = Some(f64::from(s));
                    }
                }
                Ok(outputs)
            }
        }
    }
}

/// Rows of `n` steps' class probabilities as step outputs.
fn rows(probabilities: Vec<f32>, n: usize) -> Vec<StepOutput> {
    let classes = probabilities.len() / n.max(1);
    probabilities
        .chunks_exact(classes.max(1))
        .map(|p| StepOutput {
            probabilities: Some(p.to_vec()),
            ..StepOutput::default()
        })
        .collect()
}

/// A hash of the weights a head's outputs depend on: its `model.safetensors`, or for a head
/// fused late each branch's and the weights that combine them.
fn weights_fingerprint(dir: &Path, card: &ModelCard) -> Result<u64> {
    let Some(fusion) = &card.fusion else {
        return file_hash(&dir.join(temporal::store::WEIGHTS_FILE));
    };
    let mut text = String::new();
    for b in &fusion.branches {
        let hash = file_hash(&dir.join(&b.dir).join(temporal::store::WEIGHTS_FILE))?;
        text.push_str(&format!("{}:{hash:016x}:{};", b.stream.name(), b.weight));
    }
    Ok(hash_bytes(text.as_bytes()))
}

fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("reading the head's outputs: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `t` rows of varied 1280-wide features, the same for every call.
    fn features(t: usize) -> Vec<f32> {
        let mut x = 0x9E37_79B9_u32;
        (0..t * vision::FEATURE_DIM)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x % 1000) as f32 / 500.0
            })
            .collect()
    }

    /// The head stepped through `rows` in batches of the given sizes.
    fn stepped(head: &mut StreamingHead, rows: &[f32], batches: &[usize]) -> Vec<StepOutput> {
        head.reset();
        let dim = vision::FEATURE_DIM;
        let mut at = 0;
        let mut out = Vec::new();
        for &n in batches {
            out.extend(head.step(&rows[at * dim..(at + n) * dim], n).expect("step"));
            at += n;
        }
        out
    }

    #[test]
    fn forecast_and_surprise_are_the_same_however_the_video_is_batched() -> Result<()> {
        let mut head = StreamingHead::load(None)?;
        let ahead = head.card.horizon_steps;
        assert_eq!(ahead, 4, "the built-in forecaster looks 4 steps ahead");
        let rows = features(20);
        let whole = stepped(&mut head, &rows, &[20]);
        // Batch boundaries before, at and after the horizon, and a batch of one.
        let pieces = stepped(&mut head, &rows, &[3, 1, 7, 9]);
        assert_eq!(whole.len(), 20);
        for (i, (a, b)) in whole.iter().zip(&pieces).enumerate() {
            assert_eq!(a.surprise.is_some(), i >= ahead, "step {i}");
            if let (Some(a), Some(b)) = (a.surprise, b.surprise) {
                assert!(
                    (a - b).abs() <= 1e-5 * a.abs().max(1.0),
                    "step {i}: {a} vs {b}"
                );
            }
            let (fa, fb) = (a.forecast.as_deref(), b.forecast.as_deref());
            let (Some(fa), Some(fb)) = (fa, fb) else {
                panic!("step {i}: no forecast");
            };
            let worst = fa
                .iter()
                .zip(fb)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-4, "step {i}: forecasts differ by {worst}");
        }
        Ok(())
    }

    #[test]
    fn each_step_is_scored_against_the_forecast_made_horizon_steps_before() -> Result<()> {
        let mut head = StreamingHead::load(None)?;
        let ahead = head.card.horizon_steps;
        let dim = vision::FEATURE_DIM;
        let rows = features(9);
        let out = stepped(&mut head, &rows, &[2, 5, 2]);
        for i in ahead..9 {
            let tensor = |v: &[f32]| {
                Tensor::<2>::from_data(TensorData::new(v.to_vec(), [1, dim]), &head.device)
            };
            let expected = out[i - ahead].forecast.as_deref().expect("a forecast");
            let HeadModel::Single(model) = &head.model else {
                panic!("the built-in forecaster is one head");
            };
            let want =
                read(model.surprise(tensor(&rows[i * dim..(i + 1) * dim]), tensor(expected)))?[0];
            let got = out[i].surprise.expect("due") as f32;
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "step {i}: {got} vs {want}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_fused_head_steps_each_branch_with_its_own_state() -> Result<()> {
        let (_tmp, dir) = crate::model_dir::tests::fused_folder("head-fused", FEATURE, 0.7);
        let mut head = StreamingHead::load(Some(&dir))?;
        let dim = FEATURE + media::motion::LEN;
        let rows: Vec<f32> = (0..9 * dim).map(|i| ((i * 7) % 13) as f32 / 6.0).collect();
        let step = |head: &mut StreamingHead, batches: &[usize]| -> Result<Vec<Vec<f32>>> {
            head.reset();
            let mut at = 0;
            let mut out = Vec::new();
            for &n in batches {
                for o in head.step(&rows[at * dim..(at + n) * dim], n)? {
                    out.push(o.probabilities.expect("class probabilities"));
                }
                at += n;
            }
            Ok(out)
        };
        let whole = step(&mut head, &[9])?;
        let pieces = step(&mut head, &[2, 1, 6])?;
        assert_eq!(whole.len(), 9);
        for (i, (a, b)) in whole.iter().zip(&pieces).enumerate() {
            assert!(
                (a.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                "step {i}: {a:?}"
            );
            let worst = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(
                worst < 1e-5,
                "step {i}: batches change the output by {worst}"
            );
        }
        // After a reset the first step is the first step again, on every branch.
        let again = step(&mut head, &[1])?;
        let worst = again[0]
            .iter()
            .zip(&whole[0])
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-5, "the reset head differs by {worst}");
        // Without the reset, the state carries on: the same row gives another answer.
        let carried = head.step(&rows[..dim], 1)?;
        let moved = carried[0]
            .probabilities
            .as_ref()
            .expect("probabilities")
            .iter()
            .zip(&whole[0])
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(moved > 1e-4, "state was not carried: {moved}");
        Ok(())
    }

    const FEATURE: usize = vision::FEATURE_DIM;

    #[test]
    fn reset_and_fresh_copies_start_with_nothing_pending() -> Result<()> {
        let mut head = StreamingHead::load(None)?;
        let ahead = head.card.horizon_steps;
        let rows = features(ahead + 3);
        let dim = vision::FEATURE_DIM;
        head.step(&rows, ahead + 3)?;
        let copy = &mut head.fresh();
        for h in [copy, &mut head] {
            if h.state.is_some() {
                h.reset();
            }
            let out = h.step(&rows[..ahead * dim], ahead)?;
            assert!(
                out.iter().all(|o| o.surprise.is_none()),
                "nothing was due yet"
            );
        }
        Ok(())
    }
}

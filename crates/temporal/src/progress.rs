//! Where the training loop stands between epochs: its history, the best epoch so far and the
//! shuffling generator. Training updates it; a checkpoint stores it beside the weights.

use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// Loss and metrics of one epoch. Accuracies are absent for the forecast head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_accuracy: Option<f64>,
    pub val_loss: f64,
    pub val_accuracy: Option<f64>,
    pub seconds: f64,
}

/// Everything besides the weights and the optimizer's state needed to carry on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Progress {
    pub history: Vec<EpochStats>,
    pub best_score: Option<f64>,
    /// The loss of the kept epoch: it breaks ties of the score.
    #[serde(default)]
    pub best_loss: Option<f64>,
    pub best_epoch: usize,
    pub since_best: usize,
    pub rng: SplitMix64,
}

impl Progress {
    pub fn new(seed: u64) -> Self {
        Self {
            history: Vec::new(),
            best_score: None,
            best_loss: None,
            best_epoch: 0,
            since_best: 0,
            rng: SplitMix64(seed),
        }
    }
}

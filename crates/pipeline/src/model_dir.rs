//! A trained model's folder: what `train` writes and `eval` (and `run`) read back.
//!
//! - `config.json`: the [`ModelCard`], everything needed to rebuild the model and to
//!   preprocess video exactly as in training (backbone, sampling, clip length, horizon);
//! - `model.safetensors`: the weights, the input normalisation (training-set feature mean and
//!   standard deviation, tensors `mean` and `std`) included;
//! - `labels.json`: the class names, in output order;
//! - `baseline.safetensors`: the order-blind baseline (classify);
//! - `metrics.json`, `curves.png`, `confusion.png`; `checkpoint/` while training.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use temporal::TemporalConfig;

use crate::cli::{SamplingArgs, Task};
use crate::data::SplitPlan;
use crate::decode::DecodeOptions;

pub const CARD: &str = "config.json";
pub const LABELS: &str = "labels.json";
pub const METRICS: &str = "metrics.json";
pub const CURVES: &str = "curves.png";
pub const CONFUSION: &str = "confusion.png";
pub const CHECKPOINT: &str = "checkpoint";

/// `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    pub task: Task,
    /// The temporal model's settings (cell, head, sizes).
    pub model: TemporalConfig,
    pub classes: Vec<String>,
    pub backbone: BackboneCard,
    pub sampling: SamplingCard,
    /// Steps per training sequence.
    pub clip_len: usize,
    /// Seconds between steps, measured on the training features.
    pub step_seconds: f64,
    /// anticipate / forecast: seconds ahead asked for, and the steps that became.
    pub horizon_seconds: Option<f64>,
    pub horizon_steps: usize,
    /// The training data and how it was split, so `eval` scores the same validation clips.
    pub data: PathBuf,
    pub split: SplitPlan,
    pub normalization: String,
    pub producer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackboneCard {
    pub name: String,
    pub weights: String,
    pub fingerprint: String,
    pub feature_dim: usize,
}

/// The sampling flags that shape features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingCard {
    pub fps: Option<f64>,
    pub stride: Option<u64>,
    pub keyframes: bool,
    pub size: u32,
}

impl SamplingCard {
    pub fn from_args(args: &SamplingArgs) -> Self {
        // The resolved choice: an explicit --stride wins over train's default --fps.
        Self {
            fps: args.fps.filter(|_| args.stride.is_none()),
            stride: args.stride,
            keyframes: args.keyframes,
            size: args.size,
        }
    }

    pub fn options(&self) -> Result<DecodeOptions> {
        SamplingArgs {
            fps: self.fps,
            stride: self.stride,
            keyframes: self.keyframes,
            start: None,
            end: None,
            size: self.size,
        }
        .options()
    }
}

impl ModelCard {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(CARD);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: not a model folder (no readable {CARD}; `pipeline train --out` writes one)",
                dir.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a model card", path.display()))
    }

    /// Writes `config.json` and `labels.json`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join(CARD), self)?;
        write_json(&dir.join(LABELS), &self.classes)
    }

    /// The checks a resumed run makes against the interrupted one, before any work: same
    /// task, labels, sampling and backbone.
    pub fn check_resume(
        &self,
        task: Task,
        classes: &[String],
        sampling: &SamplingCard,
        fingerprint: &str,
        data: &Resumable,
    ) -> Result<()> {
        if self.data != data.data || self.split != data.split || self.clip_len != data.clip_len {
            bail!(
                "--resume: the interrupted run used --data {}, --seed {}, --val-fraction {}, --clip-len {}; resume with the same",
                self.data.display(),
                self.split.seed,
                self.split.val_fraction,
                self.clip_len
            );
        }
        if self.classes != classes {
            bail!(
                "--resume: the labels differ from the interrupted run's: it had [{}], the data now has [{}]",
                self.classes.join(", "),
                classes.join(", ")
            );
        }
        if self.task != task {
            bail!(
                "--resume: the interrupted run trained --task {:?}, not {task:?}",
                self.task
            );
        }
        if self.sampling != *sampling || self.backbone.fingerprint != fingerprint {
            bail!(
                "--resume: sampling or backbone differ from the interrupted run's ({:?}, {})",
                self.sampling,
                self.backbone.fingerprint
            );
        }
        Ok(())
    }
}

/// What else a resumed run must share with the interrupted one: the data and how it was
/// split into sequences.
#[derive(Debug, Clone)]
pub struct Resumable {
    pub data: PathBuf,
    pub split: SplitPlan,
    pub clip_len: usize,
}

/// Pretty JSON written under a temporary name and renamed into place.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let tmp = crate::output::temp_path(path, "json");
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()))
}

//! A checkpoint after every epoch, so an interrupted run carries on where it stopped.
//!
//! Each epoch is written to a scratch folder and renamed to `epoch-NNNN` when complete; the
//! previous epoch's folder is removed after that. A run killed at any moment leaves the last
//! complete epoch to resume from, never a half-written one.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::prelude::*;
use burn::store::ModuleRecord;
use serde::{Deserialize, Serialize};

use crate::train::{EpochStats, SplitMix64};
use crate::{TemporalConfig, TemporalModel};

const CURRENT: &str = "model.bpk";
const BEST: &str = "best.bpk";
const OPTIMIZER: &str = "optimizer.bpk";
const PROGRESS: &str = "progress.json";

/// Errors writing or reading a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("writing checkpoint {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("reading checkpoint {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error(
        "the checkpoint in {path} was made with different model settings ({saved}); resume with the same settings or start a new output folder"
    )]
    Mismatch { path: PathBuf, saved: String },
}

/// Where the training loop stands: everything besides the weights needed to carry on.
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
    /// The model settings, to refuse resuming with different ones.
    pub config: String,
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
            config: String::new(),
        }
    }
}

/// A checkpoint read back.
pub(crate) struct Saved {
    pub model: TemporalModel,
    pub best: TemporalModel,
    pub optimizer: OptimizerRecord,
    pub progress: Progress,
}

#[derive(Debug)]
pub(crate) struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self {
            dir: dir.as_ref().to_path_buf(),
        }
    }

    /// Writes the state after an epoch.
    pub fn save(
        &self,
        config: &TemporalConfig,
        model: &TemporalModel,
        best: &TemporalModel,
        optimizer: &ModuleOptimizer,
        progress: &Progress,
    ) -> Result<(), CheckpointError> {
        let write = |path: &Path, e: &dyn std::fmt::Display| CheckpointError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let epoch = progress.history.len();
        let scratch = self
            .dir
            .join(format!(".epoch-{epoch:04}.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| write(&scratch, &e))?;
        for (name, module) in [(CURRENT, model), (BEST, best)] {
            let path = scratch.join(name);
            module
                .clone()
                .save_file(&path)
                .map_err(|e| write(&path, &format!("{e:?}")))?;
        }
        let path = scratch.join(OPTIMIZER);
        optimizer
            .to_record()
            .save(&path)
            .map_err(|e| write(&path, &format!("{e:?}")))?;
        let mut progress = progress.clone();
        progress.config = config_key(config);
        let path = scratch.join(PROGRESS);
        let json = serde_json::to_vec_pretty(&progress).map_err(|e| write(&path, &e))?;
        std::fs::write(&path, json).map_err(|e| write(&path, &e))?;
        let done = self.dir.join(format!("epoch-{epoch:04}"));
        let _ = std::fs::remove_dir_all(&done);
        std::fs::rename(&scratch, &done).map_err(|e| write(&done, &e))?;
        for old in self.epochs().into_iter().filter(|p| *p != done) {
            let _ = std::fs::remove_dir_all(old);
        }
        // Scratch folders of runs killed mid-write (one trainer per folder at a time).
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(".epoch-") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }

    /// The last complete epoch, if any, rebuilt on `device` (the autodiff device of training).
    pub fn load(
        &self,
        config: &TemporalConfig,
        device: &Device,
    ) -> Result<Option<Saved>, CheckpointError> {
        let Some(dir) = self.epochs().pop() else {
            return Ok(None);
        };
        let read = |path: &Path, reason: String| CheckpointError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let path = dir.join(PROGRESS);
        let text = std::fs::read_to_string(&path).map_err(|e| read(&path, e.to_string()))?;
        let progress: Progress =
            serde_json::from_str(&text).map_err(|e| read(&path, e.to_string()))?;
        if progress.config != config_key(config) {
            return Err(CheckpointError::Mismatch {
                path: dir,
                saved: progress.config,
            });
        }
        let module = |name: &str| {
            let path = dir.join(name);
            let record = ModuleRecord::load(&path).map_err(|e| read(&path, format!("{e:?}")))?;
            config
                .init(device)
                .try_load_record(record)
                .map_err(|e| read(&path, format!("{e:?}")))
        };
        let (model, best) = (module(CURRENT)?, module(BEST)?);
        let path = dir.join(OPTIMIZER);
        let optimizer = OptimizerRecord::load(&path).map_err(|e| read(&path, format!("{e:?}")))?;
        Ok(Some(Saved {
            model,
            best,
            optimizer,
            progress,
        }))
    }

    /// Complete epoch folders, oldest first.
    fn epochs(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("epoch-"))
            })
            .collect();
        found.sort();
        found
    }
}

/// The settings a checkpoint must agree on, as compact JSON.
fn config_key(config: &TemporalConfig) -> String {
    serde_json::to_string(config).unwrap_or_default()
}

//! A checkpoint after every epoch, so an interrupted run carries on where it stopped.
//!
//! Each epoch is written to a scratch folder and renamed to `epoch-NNNN` when complete; the
//! previous epoch's folder is removed after that. A run killed at any moment leaves the last
//! complete epoch to resume from, never a half-written one.
//!
//! Resuming is refused, rather than quietly giving a model no uninterrupted run would, when the
//! checkpoint was made with other model settings, another seed, or other training or validation
//! sequences, and when any of its files is missing or unreadable.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::prelude::*;
use burn::store::ModuleRecord;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{TemporalConfig, TemporalModel};
use crate::progress::Progress;

const CURRENT: &str = "model.bpk";
const BEST: &str = "best.bpk";
const OPTIMIZER: &str = "optimizer.bpk";
const PROGRESS: &str = "progress.json";

/// What a run must share with the checkpoint it resumes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunKey {
    /// The model settings, as compact JSON.
    config: String,
    /// Absent from checkpoints written before the seed was kept: not checked then.
    #[serde(default)]
    seed: Option<u64>,
    /// [`crate::sequence::fingerprint`] of the training and validation sequences; absent from
    /// checkpoints written before it was kept: not checked then.
    #[serde(default)]
    data: Option<u64>,
}

/// `progress.json`: the loop's progress and the run it belongs to, side by side.
#[derive(Debug, Serialize, Deserialize)]
struct ProgressFile {
    #[serde(flatten)]
    progress: Progress,
    #[serde(flatten)]
    run: RunKey,
}

/// A checkpoint read back.
pub(crate) struct Saved {
    pub model: TemporalModel,
    pub best: TemporalModel,
    pub optimizer: OptimizerRecord,
    pub progress: Progress,
}

/// The checkpoint folder of one run: the model settings, the seed and a fingerprint of the data
/// it trains on.
#[derive(Debug)]
pub(crate) struct Checkpoint {
    dir: PathBuf,
    config: TemporalConfig,
    run: RunKey,
}

impl Checkpoint {
    /// `data` is [`crate::sequence::fingerprint`] of the run's training and validation sets.
    pub fn new(
        dir: impl AsRef<Path>,
        config: &TemporalConfig,
        seed: u64,
        data: u64,
    ) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        // The settings go into every `progress.json`: failing to serialise them is failing to
        // write that.
        let key = serde_json::to_string(config).map_err(|e| Error::write(dir.join(PROGRESS), e))?;
        Ok(Self {
            dir,
            config: config.clone(),
            run: RunKey {
                config: key,
                seed: Some(seed),
                data: Some(data),
            },
        })
    }

    /// Writes the state after an epoch.
    pub fn save(
        &self,
        model: &TemporalModel,
        best: &TemporalModel,
        optimizer: &ModuleOptimizer,
        progress: &Progress,
    ) -> Result<()> {
        let epoch = progress.history.len();
        let scratch = self
            .dir
            .join(format!(".epoch-{epoch:04}.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| Error::write(&scratch, e))?;
        for (name, module) in [(CURRENT, model), (BEST, best)] {
            let path = scratch.join(name);
            module
                .clone()
                .save_file(&path)
                .map_err(|e| Error::write(&path, e))?;
        }
        let path = scratch.join(OPTIMIZER);
        optimizer
            .to_record()
            .save(&path)
            .map_err(|e| Error::write(&path, e))?;
        let file = ProgressFile {
            progress: progress.clone(),
            run: self.run.clone(),
        };
        let path = scratch.join(PROGRESS);
        let json = serde_json::to_vec_pretty(&file).map_err(|e| Error::write(&path, e))?;
        std::fs::write(&path, json).map_err(|e| Error::write(&path, e))?;
        let done = self.dir.join(format!("epoch-{epoch:04}"));
        let _ = std::fs::remove_dir_all(&done);
        std::fs::rename(&scratch, &done).map_err(|e| Error::write(&done, e))?;
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
    /// Fails if it belongs to another run (settings, seed or data) or any file of it is
    /// missing or unreadable.
    pub fn load(&self, device: &Device) -> Result<Option<Saved>> {
        let Some(dir) = self.epochs().pop() else {
            return Ok(None);
        };
        let path = dir.join(PROGRESS);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::read(&path, e))?;
        let file: ProgressFile = serde_json::from_str(&text).map_err(|e| Error::read(&path, e))?;
        self.check(&dir, file.run)?;
        let module = |name: &str| {
            let path = dir.join(name);
            let record = ModuleRecord::load(&path).map_err(|e| Error::read(&path, e))?;
            self.config
                .init(device)
                .try_load_record(record)
                .map_err(|e| Error::read(&path, e))
        };
        let (model, best) = (module(CURRENT)?, module(BEST)?);
        let path = dir.join(OPTIMIZER);
        let optimizer = OptimizerRecord::load(&path).map_err(|e| Error::read(&path, e))?;
        Ok(Some(Saved {
            model,
            best,
            optimizer,
            progress: file.progress,
        }))
    }

    /// Refuses a checkpoint (in `dir`) of another run.
    fn check(&self, dir: &Path, saved: RunKey) -> Result<()> {
        let path = dir.to_path_buf();
        if saved.config != self.run.config {
            return Err(Error::CheckpointConfig {
                path,
                saved: saved.config,
            });
        }
        if let (Some(saved), Some(given)) = (saved.seed, self.run.seed)
            && saved != given
        {
            return Err(Error::CheckpointSeed { path, saved, given });
        }
        if saved.data.is_some() && saved.data != self.run.data {
            return Err(Error::CheckpointData { path });
        }
        Ok(())
    }

    /// Complete epoch folders, oldest first (scratch folders, `.epoch-*`, are not complete).
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

#[cfg(test)]
mod tests {
    use burn::optim::{AdamWConfig, GradientsParams};

    use super::*;
    use crate::model::{CellKind, Head};
    use crate::progress::EpochStats;

    const SEED: u64 = 7;
    const DATA: u64 = 0xDA7A;

    fn config() -> TemporalConfig {
        TemporalConfig::new(CellKind::Gru, Head::Classify { classes: 2 })
            .with_input_dim(3)
            .with_projection(4)
            .with_hidden(4)
    }

    /// A folder of its own for each test, emptied first.
    fn folder(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("temporal-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// The progress after `epochs` epochs.
    fn progress(epochs: usize) -> Progress {
        let mut progress = Progress::new(SEED);
        for epoch in 1..=epochs {
            progress.history.push(EpochStats {
                epoch,
                lr: 1e-3,
                train_loss: 1.0 / epoch as f64,
                train_accuracy: Some(0.5),
                val_loss: 2.0,
                val_accuracy: None,
                seconds: 0.1,
            });
        }
        progress.best_epoch = epochs;
        progress
    }

    /// An optimizer after one step, so it has state to save.
    fn optimizer() -> ModuleOptimizer {
        let device = Device::flex().autodiff();
        let model = config().init(&device);
        let mut optimizer = AdamWConfig::new().init();
        let loss = model
            .forward(Tensor::ones([1, 2, 3], &device), None)
            .0
            .sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let _ = optimizer.step(1e-3, model, grads);
        optimizer
    }

    /// Saves `epochs` epochs of `config()` with [`SEED`] and [`DATA`] in `dir`, as training
    /// does; returns the last epoch's folder.
    fn save(dir: &Path, epochs: usize) -> PathBuf {
        let device = Device::flex();
        let checkpoint = Checkpoint::new(dir, &config(), SEED, DATA).expect("checkpoint");
        let model = config().init(&device);
        let optimizer = optimizer();
        for epoch in 1..=epochs {
            checkpoint
                .save(&model, &model, &optimizer, &progress(epoch))
                .expect("save");
        }
        dir.join(format!("epoch-{epochs:04}"))
    }

    fn load(dir: &Path, config: &TemporalConfig, seed: u64, data: u64) -> Result<Option<Saved>> {
        Checkpoint::new(dir, config, seed, data)
            .expect("checkpoint")
            .load(&Device::flex())
    }

    /// The error `load` gives on `dir` with the settings `save` used.
    fn load_err(dir: &Path) -> Error {
        match load(dir, &config(), SEED, DATA) {
            Ok(saved) => panic!("resumed: {:?}", saved.map(|s| s.progress)),
            Err(e) => e,
        }
    }

    /// `err` is a read error naming `path`, whose source is an `S`.
    fn assert_read_of<S: std::error::Error + 'static>(err: &Error, path: &Path) {
        match err {
            Error::Read {
                path: named,
                source,
            } => {
                assert_eq!(named, path);
                assert!(source.is::<S>(), "{source:?}");
            }
            other => panic!("expected reading {}, got {other:?}", path.display()),
        }
    }

    #[test]
    fn a_folder_without_a_complete_epoch_starts_afresh() {
        let dir = folder("afresh");
        assert!(load(&dir, &config(), SEED, DATA).expect("load").is_none());
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert!(load(&dir, &config(), SEED, DATA).expect("load").is_none());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn resuming_gives_back_what_was_saved() {
        let dir = folder("round-trip");
        let device = Device::flex();
        let (model, best) = (config().init(&device), config().init(&device));
        let checkpoint = Checkpoint::new(&dir, &config(), SEED, DATA).expect("checkpoint");
        checkpoint
            .save(&model, &best, &optimizer(), &progress(2))
            .expect("save");
        let saved = checkpoint
            .load(&device)
            .expect("load")
            .expect("a checkpoint");
        assert_eq!(saved.progress.history, progress(2).history);
        assert_eq!(saved.progress.best_epoch, 2);
        let x = Tensor::<3>::ones([1, 2, 3], &device);
        let out = |m: &TemporalModel| m.forward(x.clone(), None).0;
        let diff = |a: Tensor<3>, b: Tensor<3>| (a - b).abs().max().into_scalar::<f32>();
        assert_eq!(diff(out(&saved.model), out(&model)), 0.0);
        assert_eq!(diff(out(&saved.best), out(&best)), 0.0);
        // Two random initialisations: the comparison above would have told them apart.
        assert!(diff(out(&model), out(&best)) > 0.0);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn resuming_with_other_model_settings_is_refused() {
        let dir = folder("other-settings");
        let epoch = save(&dir, 1);
        let err = load(&dir, &config().with_hidden(5), SEED, DATA).err();
        assert!(
            matches!(&err, Some(Error::CheckpointConfig { path, .. }) if *path == epoch),
            "{err:?}"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn resuming_with_another_seed_is_refused() {
        let dir = folder("other-seed");
        save(&dir, 1);
        let err = load(&dir, &config(), SEED + 1, DATA).err();
        assert!(
            matches!(err, Some(Error::CheckpointSeed { saved, given, .. })
                if saved == SEED && given == SEED + 1),
            "{err:?}"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn resuming_on_other_data_is_refused() {
        let dir = folder("other-data");
        save(&dir, 1);
        let err = load(&dir, &config(), SEED, DATA + 1).err();
        assert!(matches!(err, Some(Error::CheckpointData { .. })), "{err:?}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn checkpoints_from_before_seed_and_data_were_kept_still_resume() {
        let dir = folder("old-format");
        let epoch = save(&dir, 1);
        let path = epoch.join(PROGRESS);
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let fields = json.as_object_mut().expect("an object");
        assert!(fields.remove("seed").is_some() && fields.remove("data").is_some());
        std::fs::write(&path, json.to_string()).expect("write");
        let saved = load(&dir, &config(), SEED + 1, DATA + 1).expect("resumes");
        assert_eq!(saved.map(|s| s.progress.history.len()), Some(1));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_missing_file_is_refused_and_named() {
        for name in [PROGRESS, CURRENT, BEST, OPTIMIZER] {
            let dir = folder(&format!("missing-{name}"));
            let epoch = save(&dir, 1);
            std::fs::remove_file(epoch.join(name)).expect("remove");
            let err = load_err(&dir);
            match name {
                PROGRESS => assert_read_of::<std::io::Error>(&err, &epoch.join(name)),
                _ => assert_read_of::<burn::store::RecordError>(&err, &epoch.join(name)),
            }
            std::fs::remove_dir_all(&dir).expect("cleanup");
        }
    }

    #[test]
    fn a_corrupt_file_is_refused_and_named() {
        for name in [PROGRESS, CURRENT, BEST, OPTIMIZER] {
            let dir = folder(&format!("corrupt-{name}"));
            let epoch = save(&dir, 1);
            // Cut short, as a full disk or a copy interrupted would leave it.
            let path = epoch.join(name);
            let bytes = std::fs::read(&path).expect("read");
            std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
            let err = load_err(&dir);
            match name {
                PROGRESS => assert_read_of::<serde_json::Error>(&err, &path),
                _ => assert_read_of::<burn::store::RecordError>(&err, &path),
            }
            std::fs::remove_dir_all(&dir).expect("cleanup");
        }
    }

    #[test]
    fn weights_that_do_not_fit_the_settings_are_refused() {
        // Settings that agree, weights of another shape (a file swapped in by hand).
        let dir = folder("misfit");
        let epoch = save(&dir, 1);
        let path = epoch.join(CURRENT);
        config()
            .with_hidden(5)
            .init(&Device::flex())
            .save_file(&path)
            .expect("save");
        assert_read_of::<burn::store::RecordError>(&load_err(&dir), &path);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_half_written_epoch_is_not_resumed_from() {
        // A run killed while writing its first epoch leaves only the scratch folder.
        let dir = folder("half-written");
        let scratch = dir.join(".epoch-0001.4242");
        std::fs::create_dir_all(&scratch).expect("mkdir");
        std::fs::write(scratch.join(PROGRESS), "{").expect("write");
        assert!(
            load(&dir, &config(), SEED, DATA)
                .expect("starts afresh")
                .is_none()
        );
        // Killed while writing its second: epoch 1 is what there is.
        save(&dir, 1);
        let scratch = dir.join(".epoch-0002.4242");
        std::fs::create_dir_all(&scratch).expect("mkdir");
        std::fs::write(scratch.join(PROGRESS), "{").expect("write");
        let saved = load(&dir, &config(), SEED, DATA).expect("resumes epoch 1");
        assert_eq!(saved.map(|s| s.progress.history.len()), Some(1));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn the_latest_complete_epoch_is_resumed_from() {
        let dir = folder("latest");
        let latest = save(&dir, 2);
        // Saving removes the epochs before; one left behind anyway must not be picked.
        let older = dir.join("epoch-0001");
        std::fs::create_dir_all(&older).expect("mkdir");
        for entry in std::fs::read_dir(&latest).expect("list").flatten() {
            std::fs::copy(entry.path(), older.join(entry.file_name())).expect("copy");
        }
        std::fs::write(older.join(PROGRESS), "{").expect("write");
        let saved = load(&dir, &config(), SEED, DATA).expect("resumes epoch 2");
        assert_eq!(saved.map(|s| s.progress.history.len()), Some(2));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}

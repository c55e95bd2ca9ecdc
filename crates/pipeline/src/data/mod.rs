//! Training data: which clips, with which labels, in which split.
//!
//! Three layouts, told apart from what `--data` points at:
//! - a CSV manifest (`path,label[,start,end][,split]`, a `.csv` file);
//! - a folder per class, `ROOT/<class>/<clip>`, optionally under `ROOT/train/` and `ROOT/val/`;
//! - any folder of videos, unlabelled (forecasting needs no labels).
//!
//! Clips without a split are divided by a stratified split drawn from the seed.

pub mod cache;
mod manifest;
pub mod sequences;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use crate::backbone::{BackboneSettings, Precision};
use crate::inputs;

/// Training data and how its features are made: shared by `train` and `eval`.
#[derive(Debug, Clone)]
pub struct DataSettings {
    /// Class folders, a CSV manifest, or (forecast) any folder of videos.
    pub data: PathBuf,
    /// The feature cache folder; `None`: [`cache::default_dir`].
    pub cache: Option<PathBuf>,
    /// The backbone that extracts features. Features that train a head or are compared with a
    /// trained head's are computed in f32, whatever this says.
    pub backbone: BackboneSettings,
}

impl DataSettings {
    /// The feature cache at `cache` or the default folder.
    pub fn feature_cache(&self) -> Result<cache::FeatureCache> {
        let dir = self.cache.clone().unwrap_or_else(cache::default_dir);
        cache::FeatureCache::new(&dir)
    }

    /// The backbone settings, in f32.
    pub fn backbone(&self) -> BackboneSettings {
        BackboneSettings {
            precision: Precision::F32,
            ..self.backbone.clone()
        }
    }
}

/// Which part of the data a clip belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
}

/// One clip: a video file, or a segment of one.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    pub path: PathBuf,
    /// The class name; `None` in unlabelled data.
    pub label: Option<String>,
    /// Seconds `[start, end)` inside the video; the whole video when `None`.
    pub segment: Option<(f64, f64)>,
    pub split: Split,
}

/// Where the data came from, for messages and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    Manifest,
    ClassFolders,
    SplitClassFolders,
    Unlabelled,
}

/// Discovered clips, every one assigned to a split, and the sorted class names.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub clips: Vec<Clip>,
    pub classes: Vec<String>,
    pub layout: Layout,
    /// Whether the data said which clips validate (`train/`+`val/` folders, a split column).
    pub has_split: bool,
}

/// What the data is for: training needs a training clip of every class and two classes at
/// least; a held-out set for `eval` needs neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Training,
    Evaluation,
}

/// How clips without a given split are divided.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitPlan {
    pub val_fraction: f64,
    pub seed: u64,
}

/// Finds the clips under `data`. With `labelled`, every clip needs a class (a manifest or class
/// folders); without, a plain folder of videos is read as unlabelled.
pub fn discover(data: &Path, labelled: bool, plan: SplitPlan, purpose: Purpose) -> Result<Dataset> {
    let meta = std::fs::metadata(data).with_context(|| format!("--data {}", data.display()))?;
    let (mut clips, layout) = if meta.is_file() {
        (manifest::read(data)?, Layout::Manifest)
    } else if data.join("train").is_dir() {
        let mut clips = class_folders(&data.join("train"), Some(Split::Train))?;
        if data.join("val").is_dir() {
            clips.extend(class_folders(&data.join("val"), Some(Split::Val))?);
        }
        (clips, Layout::SplitClassFolders)
    } else if labelled {
        (class_folders(data, None)?, Layout::ClassFolders)
    } else {
        let files = inputs::collect(&[data.to_path_buf()], inputs::is_video)?;
        let clips = files
            .into_iter()
            .map(|f| Pending {
                path: f.path,
                label: None,
                segment: None,
                split: None,
            })
            .collect();
        (clips, Layout::Unlabelled)
    };
    if !labelled {
        for c in &mut clips {
            c.label = None;
        }
    }
    if clips.is_empty() {
        bail!("{}: no video clips found", data.display());
    }
    for clip in &clips {
        if !clip.path.is_file() {
            bail!("{}: no such file", clip.path.display());
        }
    }
    let has_split = clips.iter().any(|c| c.split.is_some());
    let training = purpose == Purpose::Training;
    let classes: Vec<String> = clips
        .iter()
        .filter(|c| !training || c.split != Some(Split::Val))
        .filter_map(|c| c.label.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if let Some(c) = clips
        .iter()
        .find(|c| c.label.as_ref().is_some_and(|l| !classes.contains(l)))
    {
        bail!(
            "class '{}' ({}) has no training clips",
            c.label.as_deref().unwrap_or_default(),
            c.path.display()
        );
    }
    if training && labelled && classes.len() < 2 {
        bail!(
            "{}: found {} class(es) ({}); a classifier needs at least two",
            data.display(),
            classes.len(),
            classes.join(", ")
        );
    }
    let clips = assign_splits(clips, plan);
    if training
        && let Some(class) = classes.iter().find(|class| {
            !clips
                .iter()
                .any(|c| c.split == Split::Train && c.label.as_ref() == Some(class))
        })
    {
        bail!(
            "class '{class}' has no training clip left after holding out --val-fraction {} for validation; add clips or lower --val-fraction",
            plan.val_fraction
        );
    }
    Ok(Dataset {
        clips,
        classes,
        layout,
        has_split,
    })
}

/// A clip whose split may still be open.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub path: PathBuf,
    pub label: Option<String>,
    pub segment: Option<(f64, f64)>,
    pub split: Option<Split>,
}

/// `root/<class>/...`: every video below a class folder is a clip of that class.
fn class_folders(root: &Path, split: Option<Split>) -> Result<Vec<Pending>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("reading {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        bail!(
            "{}: expected one folder per class (ROOT/<class>/<clip>), found none",
            root.display()
        );
    }
    let mut clips = Vec::new();
    for dir in dirs {
        let class = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let files = inputs::collect(std::slice::from_ref(&dir), inputs::is_video)
            .map_err(|_| anyhow::anyhow!("class folder {} has no video files", dir.display()))?;
        clips.extend(files.into_iter().map(|f| Pending {
            path: f.path,
            label: Some(class.clone()),
            segment: None,
            split,
        }));
    }
    Ok(clips)
}

/// Gives every clip without a split one. Clips of the same video go together (segments of one
/// video in both splits would validate on frames the model trained on); per class (of the
/// video's first clip: stratified), a `val_fraction` share of the videos drawn by the seed goes
/// to validation, at least one of any class with two or more.
fn assign_splits(clips: Vec<Pending>, plan: SplitPlan) -> Vec<Clip> {
    // Videos without a given split, in order of first appearance, by class.
    let mut videos: Vec<&Path> = Vec::new();
    let mut open: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
    for c in clips.iter().filter(|c| c.split.is_none()) {
        if !videos.contains(&c.path.as_path()) {
            open.entry(c.label.clone()).or_default().push(videos.len());
            videos.push(&c.path);
        }
    }
    let mut val = BTreeSet::new();
    let mut rng = temporal::train::SplitMix64(plan.seed);
    for indices in open.values_mut() {
        for i in (1..indices.len()).rev() {
            indices.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let n = indices.len();
        let mut take = (n as f64 * plan.val_fraction).round() as usize;
        if plan.val_fraction > 0.0 && n >= 2 {
            take = take.clamp(1, n - 1);
        }
        val.extend(
            indices
                .iter()
                .take(take.min(n))
                .map(|&v| videos[v].to_path_buf()),
        );
    }
    clips
        .into_iter()
        .map(|c| Clip {
            split: c.split.unwrap_or(if val.contains(&c.path) {
                Split::Val
            } else {
                Split::Train
            }),
            path: c.path,
            label: c.label,
            segment: c.segment,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("data-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    fn touch(root: &Path, files: &[&str]) {
        for f in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, b"x").expect("write");
        }
    }

    impl Dataset {
        fn split(&self, split: Split) -> impl Iterator<Item = &Clip> {
            self.clips.iter().filter(move |c| c.split == split)
        }
    }

    const PLAN: SplitPlan = SplitPlan {
        val_fraction: 0.2,
        seed: 3,
    };

    #[test]
    fn class_folders_get_a_stratified_seeded_split() {
        let root = temp("folders");
        let mut files = Vec::new();
        for class in ["left", "right"] {
            for i in 0..10 {
                files.push(format!("{class}/{i}.mp4"));
            }
        }
        files.push("left/notes.txt".into());
        touch(&root, &files.iter().map(String::as_str).collect::<Vec<_>>());
        let data = discover(&root, true, PLAN, Purpose::Training).expect("discover");
        assert_eq!(data.layout, Layout::ClassFolders);
        assert_eq!(data.classes, ["left", "right"]);
        assert_eq!(data.clips.len(), 20);
        for class in ["left", "right"] {
            let val = data
                .split(Split::Val)
                .filter(|c| c.label.as_deref() == Some(class))
                .count();
            assert_eq!(val, 2, "{class}");
        }
        let again = discover(&root, true, PLAN, Purpose::Training).expect("discover");
        assert_eq!(again.clips, data.clips);
        let other = discover(
            &root,
            true,
            SplitPlan { seed: 4, ..PLAN },
            Purpose::Training,
        )
        .expect("discover");
        assert_ne!(other.clips, data.clips);
        // Unlabelled: the same folder is just videos.
        let plain = discover(&root, false, PLAN, Purpose::Training).expect("discover");
        assert_eq!(plain.layout, Layout::Unlabelled);
        assert!(plain.clips.iter().all(|c| c.label.is_none()));
        std::fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn train_and_val_folders_are_kept_and_checked() {
        let root = temp("splits");
        touch(&root, &["train/a/1.mp4", "train/b/1.mp4", "val/a/2.mp4"]);
        let data = discover(&root, true, PLAN, Purpose::Training).expect("discover");
        assert_eq!(data.layout, Layout::SplitClassFolders);
        assert_eq!(data.split(Split::Val).count(), 1);
        assert_eq!(data.split(Split::Train).count(), 2);
        touch(&root, &["val/c/3.mp4"]);
        let err = discover(&root, true, PLAN, Purpose::Training).expect_err("unknown val class");
        assert!(err.to_string().contains("class 'c'"), "{err}");
        std::fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn empty_class_folder_and_single_class_are_named() {
        let root = temp("empty");
        touch(&root, &["a/1.mp4", "a/2.mp4"]);
        std::fs::create_dir_all(root.join("b")).expect("mkdir");
        let err = discover(&root, true, PLAN, Purpose::Training).expect_err("empty class");
        assert!(err.to_string().contains("has no video files"), "{err}");
        assert!(err.to_string().contains("/b"), "{err}");
        std::fs::remove_dir_all(root.join("b")).expect("rm");
        let err = discover(&root, true, PLAN, Purpose::Training).expect_err("one class");
        assert!(err.to_string().contains("at least two"), "{err}");
        // A class whose only clip the split sends to validation.
        touch(&root, &["b/1.mp4"]);
        let half = SplitPlan {
            val_fraction: 0.5,
            ..PLAN
        };
        let err = discover(&root, true, half, Purpose::Training).expect_err("no training clip");
        assert!(
            err.to_string().contains("class 'b' has no training clip"),
            "{err}"
        );
        assert!(discover(&root, true, half, Purpose::Evaluation).is_ok());
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}

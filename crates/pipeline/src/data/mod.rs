//! Training data: which clips, with which labels, in which split.
//!
//! Three layouts, told apart from what `--data` points at:
//! - a CSV manifest (`path,label[,start,end][,split][,group]`, a `.csv` file);
//! - a folder per class, `ROOT/<class>/<clip>`, optionally under `ROOT/train/`, `ROOT/val/`
//!   and `ROOT/test/`;
//! - any folder of videos, unlabelled (forecasting needs no labels).
//!
//! Every clip belongs to a group: the footage it was cut from. Clips cut from one source video
//! share its content, so a split that put some in training and others in test would score the
//! model on what it has seen. The group is a manifest's `group` column, else what
//! `--group-by REGEX` finds in the file name, else the video file itself. Clips without a
//! given split are divided by group, stratified by class and drawn from the seed: a test share
//! first (`--test-fraction`), then a validation share of the rest.

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

/// Which part of the data a clip belongs to: training fits the model, validation may choose
/// among models (early stopping, the kept epoch), test is scored once at the end and chooses
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
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
    /// The footage the clip was cut from: clips of one group always share a split.
    pub group: String,
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
    /// Whether the data said which clips validate or test (`train/`+`val/`+`test/` folders, a
    /// split column).
    pub has_split: bool,
}

impl Dataset {
    /// Whether any clip is in `split`.
    pub fn has(&self, split: Split) -> bool {
        self.clips.iter().any(|c| c.split == split)
    }
}

/// What the data is for: training needs a training clip of every class and two classes at
/// least; a held-out set for `eval` needs neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Training,
    Evaluation,
}

/// How clips without a given split are divided, and how clips are grouped. Part of the model
/// card, so `eval` finds the same validation and test clips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitPlan {
    /// Share of each class's groups held out for validation.
    pub val_fraction: f64,
    /// Share of each class's groups held out for test.
    #[serde(default)]
    pub test_fraction: f64,
    pub seed: u64,
    /// A regular expression whose match in a clip's file name (its first capture group, if it
    /// has one) names the clip's group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
}

impl SplitPlan {
    /// `val_fraction` with the seed, no test share, every file its own group.
    pub fn val(val_fraction: f64, seed: u64) -> Self {
        Self {
            val_fraction,
            test_fraction: 0.0,
            seed,
            group_by: None,
        }
    }
}

/// Finds the clips under `data`. With `labelled`, every clip needs a class (a manifest or class
/// folders); without, a plain folder of videos is read as unlabelled.
pub fn discover(
    data: &Path,
    labelled: bool,
    plan: &SplitPlan,
    purpose: Purpose,
) -> Result<Dataset> {
    for (name, fraction) in [
        ("--val-fraction", plan.val_fraction),
        ("--test-fraction", plan.test_fraction),
    ] {
        if !(0.0..1.0).contains(&fraction) {
            bail!("{name} must be in [0, 1), got {fraction}");
        }
    }
    if plan.val_fraction + plan.test_fraction >= 1.0 {
        bail!(
            "--val-fraction {} and --test-fraction {} leave nothing to train on",
            plan.val_fraction,
            plan.test_fraction
        );
    }
    let group_by = plan
        .group_by
        .as_deref()
        .map(|r| {
            regex::Regex::new(r)
                .map_err(|e| anyhow::anyhow!("--group-by '{r}' is not a regular expression: {e}"))
        })
        .transpose()?;
    let meta = std::fs::metadata(data).with_context(|| format!("--data {}", data.display()))?;
    let (mut clips, layout) = if meta.is_file() {
        (manifest::read(data)?, Layout::Manifest)
    } else if data.join("train").is_dir() {
        let mut clips = class_folders(&data.join("train"), Some(Split::Train))?;
        for split in [Split::Val, Split::Test] {
            if data.join(split.name()).is_dir() {
                clips.extend(class_folders(&data.join(split.name()), Some(split))?);
            }
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
                group: None,
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
    for clip in &mut clips {
        if !clip.path.is_file() {
            bail!("{}: no such file", clip.path.display());
        }
        if clip.group.is_none() {
            clip.group = Some(match &group_by {
                Some(regex) => group_of(regex, &clip.path)?,
                None => clip.path.to_string_lossy().into_owned(),
            });
        }
    }
    warn_about_shared_groups(&clips);
    let has_split = clips.iter().any(|c| c.split.is_some());
    let training = purpose == Purpose::Training;
    let classes: Vec<String> = clips
        .iter()
        .filter(|c| !training || c.split.is_none() || c.split == Some(Split::Train))
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
            "class '{class}' has no training clip left after holding out --val-fraction {} and --test-fraction {}; add clips (of more groups) or lower the fractions",
            plan.val_fraction,
            plan.test_fraction
        );
    }
    Ok(Dataset {
        clips,
        classes,
        layout,
        has_split,
    })
}

/// The group `regex` names in the file name of `path`: its first capture group, or the whole
/// match when it has none.
fn group_of(regex: &regex::Regex, path: &Path) -> Result<String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(found) = regex.captures(&name) else {
        bail!(
            "{}: --group-by '{}' does not match the file name",
            path.display(),
            regex.as_str()
        );
    };
    let group = found
        .get(1)
        .or_else(|| found.get(0))
        .map_or("", |m| m.as_str());
    if group.is_empty() {
        bail!(
            "{}: --group-by '{}' matches an empty group in the file name",
            path.display(),
            regex.as_str()
        );
    }
    Ok(group.to_string())
}

/// Warns once per group the data itself put in more than one split: its scores would be
/// measured on footage the model trained on.
fn warn_about_shared_groups(clips: &[Pending]) {
    let mut splits: BTreeMap<&str, BTreeSet<Split>> = BTreeMap::new();
    for c in clips {
        if let (Some(group), Some(split)) = (&c.group, c.split) {
            splits.entry(group).or_default().insert(split);
        }
    }
    let shared: Vec<&str> = splits
        .iter()
        .filter(|(_, s)| s.contains(&Split::Train) && s.len() > 1)
        .map(|(g, _)| *g)
        .collect();
    if let Some(first) = shared.first() {
        tracing::warn!(
            "{} group(s) have clips in training and in val or test (first: {first}): scores on those splits are measured on footage the model trained on",
            shared.len()
        );
    }
}

/// A clip whose split may still be open.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub path: PathBuf,
    pub label: Option<String>,
    pub segment: Option<(f64, f64)>,
    pub split: Option<Split>,
    pub group: Option<String>,
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
            group: None,
        }));
    }
    Ok(clips)
}

/// Gives every clip without a split one, a group at a time: per class (of the group's first
/// clip: stratified), the groups are shuffled by the seed, a `test_fraction` share goes to
/// test, a `val_fraction` share to validation, the rest to training. A class with two or more
/// groups keeps at least one for training, and each asked-for share gets at least one group
/// where that leaves one for training.
fn assign_splits(clips: Vec<Pending>, plan: &SplitPlan) -> Vec<Clip> {
    // A group the data placed (some of its clips have a split) takes its open clips along.
    let mut chosen: BTreeMap<String, Split> = BTreeMap::new();
    for c in &clips {
        if let (Some(group), Some(split)) = (&c.group, c.split) {
            chosen.entry(group.clone()).or_insert(split);
        }
    }
    if clips.iter().all(|c| c.split.is_some()) && plan.test_fraction > 0.0 {
        tracing::warn!(
            "--test-fraction {} has nothing to draw from: the data places every clip itself",
            plan.test_fraction
        );
    }
    // Groups without a split, in order of first appearance, by class (of the group's first
    // clip: a group with clips of several classes is drawn with the first).
    let mut groups: Vec<&str> = Vec::new();
    let mut open: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
    for c in clips.iter().filter(|c| c.split.is_none()) {
        let group = c.group.as_deref().unwrap_or_default();
        if chosen.contains_key(group) {
            continue;
        }
        if !groups.contains(&group) {
            open.entry(c.label.clone()).or_default().push(groups.len());
            groups.push(group);
        }
    }
    let mut rng = temporal::train::SplitMix64(plan.seed);
    for indices in open.values_mut() {
        for i in (1..indices.len()).rev() {
            indices.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let n = indices.len();
        let share = |fraction: f64, left: usize| {
            let take = (n as f64 * fraction).round() as usize;
            if fraction > 0.0 && left >= 2 {
                take.clamp(1, left - 1)
            } else {
                take.min(left.saturating_sub(1))
            }
        };
        let test = share(plan.test_fraction, n);
        let val = share(plan.val_fraction, n - test);
        for (k, &g) in indices.iter().enumerate() {
            let split = if k < test {
                Split::Test
            } else if k < test + val {
                Split::Val
            } else {
                Split::Train
            };
            chosen.insert(groups[g].to_string(), split);
        }
    }
    clips
        .into_iter()
        .map(|c| {
            let group = c.group.unwrap_or_default();
            Clip {
                split: c
                    .split
                    .unwrap_or_else(|| chosen.get(&group).copied().unwrap_or(Split::Train)),
                path: c.path,
                label: c.label,
                segment: c.segment,
                group,
            }
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
        test_fraction: 0.0,
        seed: 3,
        group_by: None,
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
        let data = discover(&root, true, &PLAN, Purpose::Training).expect("discover");
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
        let again = discover(&root, true, &PLAN, Purpose::Training).expect("discover");
        assert_eq!(again.clips, data.clips);
        let other = discover(
            &root,
            true,
            &SplitPlan { seed: 4, ..PLAN },
            Purpose::Training,
        )
        .expect("discover");
        assert_ne!(other.clips, data.clips);
        // Unlabelled: the same folder is just videos.
        let plain = discover(&root, false, &PLAN, Purpose::Training).expect("discover");
        assert_eq!(plain.layout, Layout::Unlabelled);
        assert!(plain.clips.iter().all(|c| c.label.is_none()));
        std::fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn train_and_val_folders_are_kept_and_checked() {
        let root = temp("splits");
        touch(
            &root,
            &[
                "train/a/1.mp4",
                "train/b/1.mp4",
                "val/a/2.mp4",
                "test/b/3.mp4",
            ],
        );
        let data = discover(&root, true, &PLAN, Purpose::Training).expect("discover");
        assert_eq!(data.layout, Layout::SplitClassFolders);
        assert_eq!(data.split(Split::Val).count(), 1);
        assert_eq!(data.split(Split::Train).count(), 2);
        assert_eq!(data.split(Split::Test).count(), 1);
        assert!(data.has_split && data.has(Split::Test));
        touch(&root, &["val/c/3.mp4"]);
        let err = discover(&root, true, &PLAN, Purpose::Training).expect_err("unknown val class");
        assert!(err.to_string().contains("class 'c'"), "{err}");
        std::fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn empty_class_folder_and_single_class_are_named() {
        let root = temp("empty");
        touch(&root, &["a/1.mp4", "a/2.mp4"]);
        std::fs::create_dir_all(root.join("b")).expect("mkdir");
        let err = discover(&root, true, &PLAN, Purpose::Training).expect_err("empty class");
        assert!(err.to_string().contains("has no video files"), "{err}");
        assert!(err.to_string().contains("/b"), "{err}");
        std::fs::remove_dir_all(root.join("b")).expect("rm");
        let err = discover(&root, true, &PLAN, Purpose::Training).expect_err("one class");
        assert!(err.to_string().contains("at least two"), "{err}");
        // A class with one clip keeps it for training, whatever the fractions.
        touch(&root, &["b/1.mp4"]);
        let half = SplitPlan {
            val_fraction: 0.5,
            ..PLAN
        };
        let data = discover(&root, true, &half, Purpose::Training).expect("discover");
        let b: Vec<Split> = data
            .clips
            .iter()
            .filter(|c| c.label.as_deref() == Some("b"))
            .map(|c| c.split)
            .collect();
        assert_eq!(b, [Split::Train]);
        std::fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn groups_never_straddle_splits_and_test_is_held_out_first() {
        // Six source videos per class, four clips cut from each: `<video>_<n>.mp4`.
        let root = temp("groups");
        let mut files = Vec::new();
        for class in ["pan", "zoom"] {
            for video in 0..6 {
                for n in 0..4 {
                    files.push(format!("{class}/{class}{video}_{n}.mp4"));
                }
            }
        }
        touch(&root, &files.iter().map(String::as_str).collect::<Vec<_>>());
        let plan = SplitPlan {
            val_fraction: 0.2,
            test_fraction: 0.34,
            seed: 7,
            group_by: Some(r"^(.+)_\d+\.mp4$".into()),
        };
        let data = discover(&root, true, &plan, Purpose::Training).expect("discover");
        let mut split_of: BTreeMap<&str, BTreeSet<Split>> = BTreeMap::new();
        for c in &data.clips {
            split_of.entry(&c.group).or_default().insert(c.split);
        }
        assert_eq!(split_of.len(), 12, "{split_of:?}");
        assert!(split_of.values().all(|s| s.len() == 1), "{split_of:?}");
        for class in ["pan", "zoom"] {
            let groups = |split| {
                split_of
                    .iter()
                    .filter(|(g, s)| g.starts_with(class) && s.contains(&split))
                    .count()
            };
            // 6 groups: round(6 x 0.34) = 2 to test, round(6 x 0.2) = 1 of the other 4 to val.
            assert_eq!(
                (
                    groups(Split::Test),
                    groups(Split::Val),
                    groups(Split::Train)
                ),
                (2, 1, 3),
                "{class}"
            );
        }
        // Without --group-by every file is its own group: clips of one video scatter.
        let per_file = discover(
            &root,
            true,
            &SplitPlan {
                group_by: None,
                ..plan.clone()
            },
            Purpose::Training,
        )
        .expect("discover");
        assert_eq!(per_file.split(Split::Test).count(), 16);
        // A pattern that misses a file name says which.
        let err = discover(
            &root,
            true,
            &SplitPlan {
                group_by: Some("^cam".into()),
                ..plan.clone()
            },
            Purpose::Training,
        )
        .expect_err("no match");
        assert!(
            err.to_string().contains("does not match the file name"),
            "{err}"
        );
        let err = discover(
            &root,
            true,
            &SplitPlan {
                group_by: Some("(".into()),
                ..plan.clone()
            },
            Purpose::Training,
        )
        .expect_err("bad regex");
        assert!(
            err.to_string().contains("not a regular expression"),
            "{err}"
        );
        let err = discover(
            &root,
            true,
            &SplitPlan {
                val_fraction: 0.5,
                test_fraction: 0.5,
                ..plan
            },
            Purpose::Training,
        )
        .expect_err("nothing left");
        assert!(
            err.to_string().contains("leave nothing to train on"),
            "{err}"
        );
        std::fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn manifest_groups_split_together() {
        let root = temp("manifest-groups");
        touch(&root, &["a.mp4", "b.mp4", "c.mp4", "d.mp4"]);
        // Two clips of each of four source groups; two classes.
        let mut csv = String::from("path,label,start,end,group,split\n");
        for (file, label, group) in [
            ("a.mp4", "x", "s1"),
            ("b.mp4", "x", "s1"),
            ("c.mp4", "x", "s2"),
            ("a.mp4", "y", "s3"),
            ("d.mp4", "y", "s3"),
            ("b.mp4", "y", "s4"),
        ] {
            csv.push_str(&format!(
                "{file},{label},0,1,{group},\n{file},{label},1,2,{group},\n"
            ));
        }
        // One clip of s4 is placed in test by the data: the rest of s4 follows it.
        csv.push_str("b.mp4,y,2,3,s4,test\n");
        std::fs::write(root.join("m.csv"), csv).expect("write");
        let plan = SplitPlan {
            val_fraction: 0.0,
            test_fraction: 0.5,
            seed: 1,
            group_by: None,
        };
        let data = discover(&root.join("m.csv"), true, &plan, Purpose::Training).expect("discover");
        assert!(
            data.clips
                .iter()
                .filter(|c| c.group == "s4")
                .all(|c| c.split == Split::Test)
        );
        for group in ["s1", "s2", "s3", "s4"] {
            let splits: BTreeSet<Split> = data
                .clips
                .iter()
                .filter(|c| c.group == group)
                .map(|c| c.split)
                .collect();
            assert_eq!(splits.len(), 1, "{group}: {splits:?}");
        }
        for class in ["x", "y"] {
            let test: BTreeSet<&str> = data
                .split(Split::Test)
                .filter(|c| c.label.as_deref() == Some(class))
                .map(|c| c.group.as_str())
                .collect();
            assert_eq!(test.len(), 1, "{class}");
        }
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}

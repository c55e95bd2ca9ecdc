//! A trained model's folder: what `train` writes and `eval` (and `run`) read back.
//!
//! - `config.json`: the [`ModelCard`], everything needed to rebuild the model and to
//!   preprocess video exactly as in training (backbone, sampling, clip length, horizon);
//! - `model.safetensors`: the weights, the input normalisation (tensors `mean` and `std`, from
//!   the training features as the recipe's normalisation says) included;
//! - `labels.json`: the class names, in output order;
//! - `baseline.safetensors`: the order-blind baseline (classify: on the clip's mean feature;
//!   anticipate: on the frame now alone);
//! - `metrics.json`, `curves.png`, `confusion.png`; `checkpoint/` while training.
//!
//! A head fused late (`fusion` in the card, format 5) keeps no weights of its own: each stream's
//! head is a model folder of its own in a subfolder named after the stream (`features/`,
//! `motion/`), and the card gives each one's weight. The fused folder keeps `labels.json`, the
//! baseline (on all streams), and the fused scores in `metrics.json` and `confusion.png`.
//!
//! The folder is a file format users keep for years: `config.json` carries a `version`
//! ([`FORMAT_VERSION`]); folders written before it had one read as version 1. [`ModelCard::open`]
//! checks the whole contract before anything runs (the card against itself, `labels.json`
//! against the card, the tensors of `model.safetensors` against the card's shapes) and names
//! the file and field of any mismatch in one line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use temporal::{Head, TemporalConfig};

use crate::data::SplitPlan;
use crate::output::write_json;
use crate::sampling::SamplingSettings;
use crate::streams::{Stream, Streams};
pub use crate::task::Task;
use media::DecodeOptions;

/// The newest version of the model folder format: the newest this release reads, and what it
/// writes for a head fused late (other heads are written as version 4, which older releases
/// read).
/// - 1: no `version` field; the task stored twice (`task`, and `model.head`'s tag).
/// - 2: `version`; the task stored once, as `model.head`.
/// - 3: `model.activation` (the projection's nonlinearity) and `model.projection_dropout`
///   (older models: none, and dropout after the projection); `recipe` (how the head was
///   trained); `sampling.chosen` (why the sampling is what it is, when `train` chose it).
/// - 4: `inputs` (the streams the head reads: `["features"]` for older models, or motion
///   too) and `motion_layout` (the version of `media::motion`'s layout it was trained on).
/// - 5: `fusion` (late fusion: a head per stream in subfolders, and their weights).
pub const FORMAT_VERSION: u32 = 5;

pub const CARD: &str = "config.json";
pub const LABELS: &str = "labels.json";
pub const METRICS: &str = "metrics.json";
pub const CURVES: &str = "curves.png";
pub const CONFUSION: &str = "confusion.png";
pub const CHECKPOINT: &str = "checkpoint";

/// `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// The oldest format version that holds all the card has (4, or 5 with `fusion`) when
    /// written; [`FORMAT_VERSION`] once read (older cards are upgraded on load).
    pub version: u32,
    /// The temporal model's settings (cell, head and with it the task, sizes).
    pub model: TemporalConfig,
    pub classes: Vec<String>,
    pub backbone: BackboneCard,
    pub sampling: SamplingCard,
    /// The streams the head reads, laid side by side in this order.
    #[serde(default)]
    pub inputs: Streams,
    /// With motion among the inputs: the motion layout's version (`media::motion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion_layout: Option<u32>,
    /// With motion among the inputs: where it came from in training, `auto` (the codec's
    /// vectors, else estimated) or `estimated`; `run` and `eval` measure it the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion_source: Option<String>,
    /// Steps per training sequence.
    pub clip_len: usize,
    /// Seconds between steps, measured on the training features.
    pub step_seconds: f64,
    /// anticipate / forecast: seconds ahead asked for, and the steps that became.
    pub horizon_seconds: Option<f64>,
    pub horizon_steps: usize,
    /// The training data and how it was split, so `eval` scores the same validation clips.
    #[serde(serialize_with = "crate::inputs::serialize_lossy")]
    pub data: PathBuf,
    pub split: SplitPlan,
    /// How the head was trained; absent from folders written before version 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<Recipe>,
    pub normalization: String,
    pub producer: String,
    /// Late fusion: the heads of each stream and their weights. `model` then gives the
    /// settings the branches share, its `input_dim` the width of a whole step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fusion: Option<FusionCard>,
}

/// How the streams of a head fused late are combined: at each step, the log-probabilities of
/// each stream's head times its weight, summed and normalised again (`temporal::fusion`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusionCard {
    /// One per stream, in the order of `inputs`.
    pub branches: Vec<BranchCard>,
    /// The clips that chose the weights.
    pub weighed_on: WeighedOn,
    /// How the weights were chosen, in words.
    pub chosen: String,
}

/// The clips a late fusion's weights were fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeighedOn {
    /// The validation split.
    Validation,
    /// Out-of-fold predictions on the training split, folds by group.
    OutOfFold,
    /// None: every weight 1.
    Equal,
}

/// One stream's head of a late fusion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BranchCard {
    pub stream: Stream,
    /// Its model folder, a subfolder of this one.
    pub dir: String,
    pub weight: f64,
}

/// The optimisation that trained a head: what `train` was asked for, in the card so a model
/// says how it was made and `--resume` continues the same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub schedule: temporal::train::Schedule,
    pub selection: temporal::train::Selection,
    pub normalization: temporal::train::Normalization,
    /// Only with selection `best`.
    pub patience: Option<usize>,
    pub weight_decay: f64,
    pub adam_epsilon: f64,
    pub clip_norm: f64,
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
    /// How `train` chose this sampling from the data, when no flag set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<String>,
}

impl SamplingCard {
    pub fn from_settings(args: &SamplingSettings) -> Self {
        // The resolved choice: an explicit --stride wins over train's default --fps.
        Self {
            fps: args.fps.filter(|_| args.stride.is_none()),
            stride: args.stride,
            keyframes: args.keyframes,
            size: args.size,
            chosen: None,
        }
    }

    /// The decode options of this sampling, measuring motion from `motion`.
    pub fn options(&self, motion: media::MotionSource) -> Result<DecodeOptions> {
        SamplingSettings {
            fps: self.fps,
            stride: self.stride,
            keyframes: self.keyframes,
            start: None,
            end: None,
            size: self.size,
            motion,
        }
        .options()
    }
}

impl ModelCard {
    /// Where `run` and `eval` take motion from for this head, the command line having asked
    /// for `asked`: the training run's source when the head reads motion (`--motion off` and
    /// `--keyframes` refused), else what was asked.
    pub fn motion(
        &self,
        asked: media::MotionSource,
        keyframes: bool,
    ) -> Result<media::MotionSource> {
        if !self.inputs.needs_motion() {
            return Ok(asked);
        }
        let source = self.inputs.motion(asked, keyframes)?;
        Ok(match self.motion_source.as_deref() {
            Some("estimated") => media::MotionSource::Estimated,
            Some(_) => media::MotionSource::Auto,
            None => source,
        })
    }

    /// What the head learns, from its head.
    pub fn task(&self) -> Task {
        match self.model.head {
            Head::Classify { .. } => Task::Classify,
            Head::Anticipate { .. } => Task::Anticipate,
            Head::Forecast { .. } => Task::Forecast,
        }
    }

    /// The card of the model folder `dir`, after checking the folder's whole contract:
    /// [`Self::read`], then `labels.json` and `model.safetensors` against it.
    pub fn open(dir: &Path) -> Result<Self> {
        let card = Self::read(dir)?;
        card.check_folder(dir)?;
        Ok(card)
    }

    /// The checks of [`Self::open`] past the card itself: `labels.json`, and the weights (a
    /// fused head's: each branch's folder).
    fn check_folder(&self, dir: &Path) -> Result<()> {
        self.check_labels(dir)?;
        if self.fusion.is_some() {
            return self.check_branches(dir);
        }
        let weights = dir.join(temporal::store::WEIGHTS_FILE);
        let header = safetensors_header(&std::fs::read(&weights).with_context(|| {
            format!(
                "{}: the model folder has no readable weights",
                weights.display()
            )
        })?)
        .map_err(|e| anyhow!("{}: {e}", weights.display()))?;
        self.check_tensors(&header)
            .map_err(|e| anyhow!("{} does not match {CARD}: {e}", weights.display()))
    }

    /// Checks the branches of a head fused late, each a model folder of its own, against this
    /// card: the stream named, and the same task, classes, sampling, backbone and clip length.
    fn check_branches(&self, dir: &Path) -> Result<()> {
        let Some(fusion) = &self.fusion else {
            return Ok(());
        };
        for branch in &fusion.branches {
            let path = dir.join(&branch.dir);
            // Checked as not fused before its folder is: a branch that is fused itself (a
            // folder linked to its parent) is refused, not followed.
            let card = Self::read(&path)?;
            if card.fusion.is_some() {
                bail!(
                    "{}: the {} branch is fused itself; a branch reads one stream",
                    path.join(CARD).display(),
                    branch.stream.name()
                );
            }
            card.check_folder(&path)?;
            let differs = |what: &str| {
                anyhow!(
                    "{}: the {} branch's {what} differs from {}'s",
                    path.join(CARD).display(),
                    branch.stream.name(),
                    dir.join(CARD).display()
                )
            };
            if card.inputs != Streams::one(branch.stream) {
                return Err(differs("inputs"));
            }
            if branch.stream == Stream::Motion
                && (card.motion_layout != self.motion_layout
                    || card.motion_source != self.motion_source)
            {
                return Err(differs("motion layout or source"));
            }
            if card.classes != self.classes {
                return Err(differs("classes"));
            }
            if card.model.head != self.model.head {
                return Err(differs("head"));
            }
            if card.sampling != self.sampling
                || card.backbone != self.backbone
                || card.clip_len != self.clip_len
            {
                return Err(differs("sampling, backbone or clip length"));
            }
        }
        Ok(())
    }

    /// `config.json` of `dir`, read and checked against itself.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(CARD);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: not a model folder (no readable {CARD}; `pipeline train --out` writes one)",
                dir.display()
            )
        })?;
        Self::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
    }

    /// A card from the text of a `config.json` of any version up to [`FORMAT_VERSION`],
    /// upgraded to the current one and checked.
    pub fn parse(text: &str) -> Result<Self> {
        let mut value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| anyhow!("not valid JSON ({e})"))?;
        let fields = value
            .as_object_mut()
            .ok_or_else(|| anyhow!("not a model card (a JSON object expected)"))?;
        let version = match fields.get("version") {
            None => 1,
            Some(v) => v
                .as_u64()
                .filter(|v| *v >= 1)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| anyhow!("version is {v}, not a positive whole number"))?,
        };
        if version > FORMAT_VERSION {
            bail!(
                "the model folder is version {version}, written by a newer pipeline; this one \
                 reads versions 1 to {FORMAT_VERSION}: upgrade pipeline to use it"
            );
        }
        // Before version 3 the projection was linear and dropout followed it.
        if version < 3
            && let Some(model) = fields.get_mut("model").and_then(|m| m.as_object_mut())
        {
            model.insert("activation".into(), "identity".into());
            model.insert("projection_dropout".into(), true.into());
        }
        // Version 1 stored the task twice; it must agree with the head's.
        let stated_task = match version {
            1 => fields.remove("task"),
            _ => None,
        };
        fields.insert("version".into(), FORMAT_VERSION.into());
        let mut card: ModelCard =
            serde_json::from_value(value).map_err(|e| anyhow!("not a model card: {e}"))?;
        if let Some(stated) = stated_task {
            let stated: Task = serde_json::from_value(stated.clone())
                .map_err(|_| anyhow!("task is {stated}, not classify, anticipate or forecast"))?;
            if stated != card.task() {
                bail!(
                    "task is {}, but model.head is a {} head",
                    stated.name(),
                    card.task().name()
                );
            }
        }
        if version == 1 {
            card.backbone.fingerprint =
                crate::backbone::upgrade_fingerprint(&card.backbone.fingerprint);
        }
        card.check()?;
        Ok(card)
    }

    /// The card against itself: sizes that agree, labels for every output.
    fn check(&self) -> Result<()> {
        let m = &self.model;
        if self.inputs == Streams::default() && m.input_dim != self.backbone.feature_dim {
            bail!(
                "model.input_dim is {}, but backbone.feature_dim is {}",
                m.input_dim,
                self.backbone.feature_dim
            );
        }
        let width = usize::from(self.inputs.has(Stream::Features)) * self.backbone.feature_dim
            + usize::from(self.inputs.needs_motion()) * media::motion::LEN;
        if m.input_dim != width {
            bail!(
                "model.input_dim is {}, but the inputs ({}) give {width} values a step",
                m.input_dim,
                self.inputs.name()
            );
        }
        if self.inputs.needs_motion() {
            let layout = self.motion_layout.unwrap_or(0);
            if layout != media::motion::LAYOUT_VERSION {
                bail!(
                    "the head reads motion of layout version {layout}; this pipeline measures version {}: train it again",
                    media::motion::LAYOUT_VERSION
                );
            }
        }
        for (name, v) in [
            ("model.input_dim", m.input_dim),
            ("model.hidden", m.hidden),
            ("model.layers", m.layers),
            ("model.projection", m.projection),
            ("clip_len", self.clip_len),
        ] {
            if v == 0 {
                bail!("{name} is 0");
            }
        }
        match m.head {
            Head::Classify { classes } | Head::Anticipate { classes, .. }
                if classes != self.classes.len() =>
            {
                bail!(
                    "model.head has {classes} outputs, but classes lists {} labels",
                    self.classes.len()
                );
            }
            Head::Forecast { ahead } if ahead != self.horizon_steps => bail!(
                "model.head forecasts {ahead} steps ahead, but horizon_steps is {}",
                self.horizon_steps
            ),
            Head::Anticipate { horizon, .. } if horizon != self.horizon_steps => bail!(
                "model.head anticipates {horizon} steps ahead, but horizon_steps is {}",
                self.horizon_steps
            ),
            _ => {}
        }
        if !(self.step_seconds.is_finite() && self.step_seconds > 0.0) {
            bail!(
                "step_seconds is {}, not a positive number",
                self.step_seconds
            );
        }
        if let Some(fusion) = &self.fusion {
            if self.task() == Task::Forecast {
                bail!("fusion: forecast heads are not fused");
            }
            let streams: Vec<Stream> = fusion.branches.iter().map(|b| b.stream).collect();
            if streams != self.inputs.list() {
                bail!(
                    "fusion names the streams [{}], but inputs are {}",
                    streams
                        .iter()
                        .map(|s| s.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.inputs.name()
                );
            }
            for b in &fusion.branches {
                let plain = Path::new(&b.dir)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
                if b.dir.is_empty() || !plain {
                    bail!(
                        "fusion: the {} branch's dir {:?} is not a subfolder name",
                        b.stream.name(),
                        b.dir
                    );
                }
                if !(b.weight.is_finite() && b.weight >= 0.0) {
                    bail!(
                        "fusion: the {} branch's weight is {}, not a number of at least 0",
                        b.stream.name(),
                        b.weight
                    );
                }
            }
            if fusion.branches.iter().all(|b| b.weight == 0.0) {
                bail!("fusion: every branch has weight 0");
            }
        }
        Ok(())
    }

    /// `labels.json`, when the folder has one, names the card's classes in the same order.
    fn check_labels(&self, dir: &Path) -> Result<()> {
        let path = dir.join(LABELS);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let labels: Vec<String> = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{}: not a list of labels ({e})", path.display()))?;
        if labels != self.classes {
            bail!(
                "{} does not match {CARD}: it lists {} labels [{}], the card {} [{}]",
                path.display(),
                labels.len(),
                labels.join(", "),
                self.classes.len(),
                self.classes.join(", ")
            );
        }
        Ok(())
    }

    /// The shapes the card promises of the weights' main tensors, against a safetensors
    /// header (tensor name to shape); one line on the first that differs.
    pub fn check_tensors(&self, header: &BTreeMap<String, Vec<usize>>) -> Result<()> {
        let m = &self.model;
        let outputs = m.output_dim();
        let what = match m.head {
            Head::Classify { classes } | Head::Anticipate { classes, .. } => {
                format!("{classes} classes")
            }
            Head::Forecast { .. } => format!("a {outputs}-wide forecast"),
        };
        let expected = [
            (
                "mean",
                vec![m.input_dim],
                format!("input_dim {}", m.input_dim),
            ),
            (
                "std",
                vec![m.input_dim],
                format!("input_dim {}", m.input_dim),
            ),
            (
                "projection.weight",
                vec![m.input_dim, m.projection],
                format!("input_dim {} and projection {}", m.input_dim, m.projection),
            ),
            (
                "head.weight",
                vec![m.hidden, outputs],
                format!("hidden {} and {what}", m.hidden),
            ),
            ("head.bias", vec![outputs], what.clone()),
        ];
        for (name, shape, why) in expected {
            match header.get(name) {
                None => bail!("it has no tensor {name}"),
                Some(found) if *found != shape => {
                    bail!("{name} is {found:?}, the card says {shape:?} ({why})")
                }
                Some(_) => {}
            }
        }
        let layers = header
            .keys()
            .filter_map(|k| {
                k.strip_prefix("layers.")?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .max()
            .map_or(0, |l| l + 1);
        if layers != m.layers {
            bail!(
                "it has {layers} recurrent layers, the card says {}",
                m.layers
            );
        }
        Ok(())
    }

    /// Writes `config.json` and `labels.json`. The card says the oldest format version that
    /// holds all it has (4 without `fusion`), so older releases read what they can.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let card = Self {
            version: if self.fusion.is_some() { 5 } else { 4 },
            ..self.clone()
        };
        write_json(&dir.join(CARD), &card)?;
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
                "--resume: the interrupted run used --data {}, --seed {}, --val-fraction {}, --test-fraction {}, --group-by {}, --clip-len {}; resume with the same",
                self.data.display(),
                self.split.seed,
                self.split.val_fraction,
                self.split.test_fraction,
                self.split.group_by.as_deref().unwrap_or("(none)"),
                self.clip_len
            );
        }
        if serde_json::to_value(&self.model).ok() != serde_json::to_value(&data.model).ok() {
            let m = &self.model;
            bail!(
                "--resume: the interrupted run's head was --cell {} --hidden {} --layers {} --activation {} --dropout {}{}; resume with the same",
                serde_json::to_value(m.cell)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                m.hidden,
                m.layers,
                match m.activation {
                    temporal::Activation::Relu => "relu",
                    temporal::Activation::Identity => "none",
                },
                m.dropout,
                if m.projection_dropout {
                    " --projection-dropout"
                } else {
                    ""
                }
            );
        }
        if let Some(recipe) = self.recipe.as_ref().filter(|r| **r != data.recipe) {
            bail!(
                "--resume: the interrupted run trained with --epochs {} --lr {} --schedule {} --select {} --normalize {} --weight-decay {} --adam-epsilon {} --batch {}{}; resume with the same",
                recipe.epochs,
                recipe.lr,
                recipe.schedule.name(),
                recipe.selection.name(),
                recipe.normalization.name(),
                recipe.weight_decay,
                recipe.adam_epsilon,
                recipe.batch,
                recipe
                    .patience
                    .map(|p| format!(" --patience {p}"))
                    .unwrap_or_default()
            );
        }
        if self.classes != classes {
            bail!(
                "--resume: the labels differ from the interrupted run's: it had [{}], the data now has [{}]",
                self.classes.join(", "),
                classes.join(", ")
            );
        }
        if self.task() != task {
            bail!(
                "--resume: the interrupted run trained --task {}, not {}",
                self.task().name(),
                task.name()
            );
        }
        // How the sampling was chosen is a note, not part of it.
        let chosen = |s: &SamplingCard| SamplingCard {
            chosen: None,
            ..s.clone()
        };
        if chosen(&self.sampling) != chosen(sampling) || self.backbone.fingerprint != fingerprint {
            bail!(
                "--resume: sampling or backbone differ from the interrupted run's ({:?}, {})",
                self.sampling,
                self.backbone.fingerprint
            );
        }
        Ok(())
    }
}

/// The model a folder holds: one head, or one per stream fused late.
#[derive(Debug, Clone)]
pub enum HeadModel {
    Single(Box<temporal::TemporalModel>),
    Late(temporal::fusion::LateFusion),
}

impl HeadModel {
    /// The model of the folder `dir`, whose card (from [`ModelCard::open`]) is `card`.
    pub fn load(dir: &Path, card: &ModelCard, device: &burn::prelude::Device) -> Result<Self> {
        if card.fusion.is_none() {
            return Ok(Self::Single(Box::new(temporal::store::load(
                dir,
                &card.model,
                device,
            )?)));
        }
        // The branches read the streams in the order of `inputs`, and their folders were
        // checked, when the card was opened.
        let mut branches = Vec::new();
        let mut at = 0;
        for branch in card.fusion.iter().flat_map(|f| &f.branches) {
            let branch_card = ModelCard::read(&dir.join(&branch.dir))?;
            let columns = at..at + branch_card.model.input_dim;
            at = columns.end;
            branches.push(temporal::fusion::Branch {
                columns,
                model: temporal::store::load(&dir.join(&branch.dir), &branch_card.model, device)?,
                weight: branch.weight,
            });
        }
        if at != card.model.input_dim {
            bail!(
                "{}: the branches read {at} values a step, model.input_dim is {}",
                dir.join(CARD).display(),
                card.model.input_dim
            );
        }
        Ok(Self::Late(temporal::fusion::LateFusion::new(branches)?))
    }

    /// Loss and metrics on `sequences` (steps of the card's whole input width).
    pub fn evaluate(
        &self,
        sequences: &[temporal::Sequence],
        device: &burn::prelude::Device,
    ) -> Result<temporal::train::Evaluation> {
        Ok(match self {
            Self::Single(model) => temporal::train::evaluate(model, sequences, device)?,
            Self::Late(fused) => fused.evaluate(sequences, device)?,
        })
    }
}

/// What else a resumed run must share with the interrupted one: the data and how it was
/// split into sequences.
#[derive(Debug, Clone)]
pub struct Resumable {
    pub data: PathBuf,
    pub split: SplitPlan,
    pub clip_len: usize,
    pub recipe: Recipe,
    /// The model settings asked for, with the interrupted run's head.
    pub model: TemporalConfig,
}

/// The tensor names and shapes of a safetensors file, from its header; an error when the bytes
/// are not a whole safetensors file (truncated, or something else).
pub fn safetensors_header(bytes: &[u8]) -> Result<BTreeMap<String, Vec<usize>>> {
    #[derive(Deserialize)]
    struct Entry {
        shape: Vec<usize>,
        data_offsets: (usize, usize),
    }
    let not = |why: &str| anyhow!("not a whole safetensors file ({why})");
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        .ok_or_else(|| not("shorter than its header"))?;
    let header = usize::try_from(len)
        .ok()
        .and_then(|len| bytes.get(8..8usize.checked_add(len)?))
        .ok_or_else(|| not("truncated inside its header"))?;
    let mut entries: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|_| not("its header is not JSON"))?;
    entries.remove("__metadata__");
    let data = bytes.len() - 8 - header.len();
    let mut shapes = BTreeMap::new();
    for (name, entry) in entries {
        let entry: Entry =
            serde_json::from_value(entry).map_err(|_| not(&format!("bad entry {name}")))?;
        if entry.data_offsets.1 > data {
            return Err(not(&format!(
                "truncated: {name} ends at byte {} of {data}",
                entry.data_offsets.1
            )));
        }
        shapes.insert(name, entry.shape);
    }
    Ok(shapes)
}

#[cfg(test)]
pub(crate) mod tests {
    use burn::prelude::*;
    use temporal::CellKind;

    use super::*;

    /// A small classify folder (8-wide features, 2 classes) that loads: card, labels, weights.
    fn folder(name: &str) -> (tempfile::TempDir, PathBuf) {
        folder_of(name, 8)
    }

    /// [`folder`] with features `feature_dim` wide.
    fn folder_of(name: &str, feature_dim: usize) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::Builder::new()
            .prefix(name)
            .tempdir()
            .expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let config = TemporalConfig::new(CellKind::Gru, Head::Classify { classes: 2 })
            .with_input_dim(feature_dim)
            .with_projection(4)
            .with_hidden(3);
        let model = config.init(&Device::flex());
        temporal::store::save(&model, &dir).expect("save weights");
        let card = ModelCard {
            version: FORMAT_VERSION,
            model: config,
            classes: vec!["grow".into(), "shrink".into()],
            backbone: BackboneCard {
                name: "test".into(),
                weights: "test".into(),
                fingerprint: "test".into(),
                feature_dim,
            },
            sampling: SamplingCard {
                fps: Some(4.0),
                stride: None,
                keyframes: false,
                size: 224,
                chosen: None,
            },
            inputs: Streams::default(),
            motion_layout: None,
            motion_source: None,
            clip_len: 10,
            step_seconds: 0.25,
            horizon_seconds: None,
            horizon_steps: 0,
            data: PathBuf::from("data"),
            split: SplitPlan::val(0.2, 0),
            recipe: None,
            normalization: String::new(),
            producer: "test".into(),
            fusion: None,
        };
        card.write(&dir).expect("write card");
        (tmp, dir)
    }

    /// [`folder_of`] turned into a late fusion of features (its own head, moved to
    /// `features/`, weight `features_weight`) and motion (a new head in `motion/`, weight 1.2).
    pub(crate) fn fused_folder(
        name: &str,
        feature_dim: usize,
        features_weight: f64,
    ) -> (tempfile::TempDir, PathBuf) {
        let (tmp, dir) = folder_of(name, feature_dim);
        let single = ModelCard::read(&dir).expect("card");
        let features = dir.join("features");
        std::fs::create_dir_all(&features).expect("mkdir");
        for f in [CARD, LABELS, temporal::store::WEIGHTS_FILE] {
            std::fs::rename(dir.join(f), features.join(f)).expect("move");
        }
        let motion = dir.join("motion");
        let config = single.model.clone().with_input_dim(media::motion::LEN);
        temporal::store::save(&config.init(&Device::flex()), &motion).expect("save");
        let with_motion = |model: TemporalConfig, inputs: &str| ModelCard {
            model,
            inputs: Streams::parse(inputs).expect("streams"),
            motion_layout: Some(media::motion::LAYOUT_VERSION),
            motion_source: Some("auto".into()),
            ..single.clone()
        };
        with_motion(config, "motion").write(&motion).expect("write");
        let branch = |stream, weight| BranchCard {
            stream,
            dir: match stream {
                Stream::Features => "features".into(),
                Stream::Motion => "motion".into(),
            },
            weight,
        };
        ModelCard {
            fusion: Some(FusionCard {
                branches: vec![
                    branch(Stream::Features, features_weight),
                    branch(Stream::Motion, 1.2),
                ],
                weighed_on: WeighedOn::Validation,
                chosen: "test".into(),
            }),
            ..with_motion(
                single
                    .model
                    .clone()
                    .with_input_dim(feature_dim + media::motion::LEN),
                "features,motion",
            )
        }
        .write(&dir)
        .expect("write");
        (tmp, dir)
    }

    #[test]
    fn a_fused_folder_loads_each_stream_head_on_its_own_columns() -> Result<()> {
        let (_tmp, dir) = fused_folder("fused", 8, 0.0);
        let card = ModelCard::open(&dir)?;
        let device = Device::flex();
        let HeadModel::Late(fused) = HeadModel::load(&dir, &card, &device)? else {
            panic!("a fused folder loads as late fusion");
        };
        let branches: Vec<_> = fused
            .branches()
            .iter()
            .map(|b| (b.columns.clone(), b.weight))
            .collect();
        assert_eq!(branches, [(0..8, 0.0), (8..8 + media::motion::LEN, 1.2)]);
        // The features head has weight 0: the fused head is the motion head alone, sharpened
        // by its weight of 1.2.
        let motion = &fused.branches()[1].model;
        let x = Tensor::<3>::random(
            [1, 3, 8 + media::motion::LEN],
            burn::tensor::Distribution::Default,
            &device,
        );
        let (fused_out, _) = fused.forward(x.clone(), None);
        let (alone, _) = motion.forward(x.slice([0..1, 0..3, 8..8 + media::motion::LEN]), None);
        let log_softmax = burn::tensor::activation::log_softmax::<3>;
        let diff = (fused_out - log_softmax(log_softmax(alone, 2) * 1.2, 2))
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }

    #[test]
    fn a_fused_folder_with_a_bad_branch_is_refused_by_name() {
        let (_tmp, dir) = fused_folder("fused-bad", 8, 0.0);
        edit_card(&dir, |v| {
            v["fusion"]["branches"][1]["dir"] = "../elsewhere".into()
        });
        let err = open_error(&dir);
        assert!(
            err.contains("\"../elsewhere\" is not a subfolder name"),
            "{err}"
        );
        // Each branch must read the stream the card names.
        edit_card(&dir, |v| {
            v["fusion"]["branches"][1]["dir"] = "features".into()
        });
        let err = open_error(&dir);
        assert!(
            err.contains("features/config.json: the motion branch's inputs differs"),
            "{err}"
        );
        edit_card(&dir, |v| v["fusion"]["branches"][1]["dir"] = "gone".into());
        let err = open_error(&dir);
        assert!(err.contains("gone: not a model folder"), "{err}");
        edit_card(&dir, |v| {
            v["fusion"]["branches"][1]["dir"] = "motion".into();
            v["fusion"]["branches"][1]["weight"] = 0.0.into();
        });
        assert!(open_error(&dir).contains("every branch has weight 0"));
        edit_card(&dir, |v| {
            v["fusion"]["branches"][1]["weight"] = 1.0.into();
            v["model"]["head"] = serde_json::json!({"task": "forecast", "ahead": 1});
            v["horizon_steps"] = 1.into();
        });
        assert!(open_error(&dir).contains("forecast heads are not fused"));
    }

    /// `config.json` of `dir` with `edit` applied to its JSON.
    fn edit_card(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = dir.join(CARD);
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        edit(&mut v);
        std::fs::write(&path, v.to_string()).expect("write");
    }

    fn open_error(dir: &Path) -> String {
        format!("{:#}", ModelCard::open(dir).expect_err("must not load"))
    }

    #[test]
    fn a_folder_of_this_release_loads() {
        let (_tmp, dir) = folder("ok");
        let card = ModelCard::open(&dir).expect("loads");
        assert_eq!(
            (card.version, card.task()),
            (FORMAT_VERSION, Task::Classify)
        );
    }

    #[test]
    fn a_folder_from_the_release_before_versions_loads_as_version_1() {
        // models/forecaster was written without a version, the task stored twice.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/forecaster");
        let text = std::fs::read_to_string(dir.join(CARD)).expect("read");
        assert!(
            !text.contains("\"version\""),
            "the fixture must stay a version-1 card"
        );
        let card = ModelCard::open(&dir).expect("loads");
        assert_eq!(card.task(), Task::Forecast);
        assert_eq!(card.version, FORMAT_VERSION);
        // Its backbone fingerprint is upgraded to this release's hash of the same weights.
        assert_eq!(
            card.backbone.fingerprint,
            crate::backbone::builtin_fingerprint()
        );
    }

    #[test]
    fn garbage_json_is_named() {
        let (_tmp, dir) = folder("garbage");
        std::fs::write(dir.join(CARD), "{ not json").expect("write");
        let err = open_error(&dir);
        assert!(
            err.contains("config.json") && err.contains("not valid JSON"),
            "{err}"
        );
    }

    #[test]
    fn a_class_count_the_head_does_not_have_is_refused() {
        let (_tmp, dir) = folder("classes");
        edit_card(&dir, |v| {
            v["classes"] = serde_json::json!(["a", "b", "c"]);
        });
        let err = open_error(&dir);
        assert!(
            err.contains("model.head has 2 outputs, but classes lists 3 labels"),
            "{err}"
        );
        // Card and labels agree on 3 classes, the weights have 2.
        edit_card(&dir, |v| v["model"]["head"]["classes"] = 3.into());
        std::fs::write(dir.join(LABELS), r#"["a","b","c"]"#).expect("write");
        let err = open_error(&dir);
        assert!(
            err.contains("model.safetensors does not match config.json: head.weight is [3, 2], the card says [3, 3] (hidden 3 and 3 classes)"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_input_dimension_is_refused() {
        let (_tmp, dir) = folder("input");
        edit_card(&dir, |v| {
            v["model"]["input_dim"] = 16.into();
            v["backbone"]["feature_dim"] = 16.into();
        });
        let err = open_error(&dir);
        assert!(err.contains("mean is [8], the card says [16]"), "{err}");
        edit_card(&dir, |v| v["backbone"]["feature_dim"] = 8.into());
        let err = open_error(&dir);
        assert!(
            err.contains("model.input_dim is 16, but backbone.feature_dim is 8"),
            "{err}"
        );
    }

    #[test]
    fn truncated_weights_are_refused() {
        let (_tmp, dir) = folder("truncated");
        let path = dir.join(temporal::store::WEIGHTS_FILE);
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 10]).expect("write");
        let err = open_error(&dir);
        assert!(
            err.contains("model.safetensors") && err.contains("truncated"),
            "{err}"
        );
        std::fs::write(&path, &bytes[..20]).expect("write");
        assert!(open_error(&dir).contains("truncated inside its header"));
    }

    #[test]
    fn a_short_label_list_is_refused() {
        let (_tmp, dir) = folder("labels");
        std::fs::write(dir.join(LABELS), r#"["grow"]"#).expect("write");
        let err = open_error(&dir);
        assert!(
            err.contains("labels.json does not match config.json: it lists 1 labels"),
            "{err}"
        );
    }

    #[test]
    fn a_folder_from_a_future_version_is_refused() {
        let (_tmp, dir) = folder("future");
        edit_card(&dir, |v| v["version"] = (FORMAT_VERSION + 1).into());
        let err = open_error(&dir);
        let want = format!(
            "version {}, written by a newer pipeline",
            FORMAT_VERSION + 1
        );
        assert!(err.contains(&want), "{err}");
    }

    #[test]
    fn a_version_1_task_that_contradicts_the_head_is_refused() {
        let (_tmp, dir) = folder("task");
        edit_card(&dir, |v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("version");
                o.insert("task".into(), "forecast".into());
            }
        });
        let err = open_error(&dir);
        assert!(
            err.contains("task is forecast, but model.head is a classify head"),
            "{err}"
        );
    }
}

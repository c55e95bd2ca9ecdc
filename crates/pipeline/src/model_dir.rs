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

/// The version of the model folder format this release writes (and the newest it reads).
/// - 1: no `version` field; the task stored twice (`task`, and `model.head`'s tag).
/// - 2: `version`; the task stored once, as `model.head`.
/// - 3: `model.activation` (the projection's nonlinearity) and `model.projection_dropout`
///   (older models: none, and dropout after the projection); `recipe` (how the head was
///   trained); `sampling.chosen` (why the sampling is what it is, when `train` chose it).
/// - 4: `inputs` (the streams the head reads: `["features"]` for older models, or motion
///   too) and `motion_layout` (the version of `media::motion`'s layout it was trained on).
pub const FORMAT_VERSION: u32 = 4;

pub const CARD: &str = "config.json";
pub const LABELS: &str = "labels.json";
pub const METRICS: &str = "metrics.json";
pub const CURVES: &str = "curves.png";
pub const CONFUSION: &str = "confusion.png";
pub const CHECKPOINT: &str = "checkpoint";

/// `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// [`FORMAT_VERSION`] when written; a card read from an older folder is upgraded on load.
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
        card.check_labels(dir)?;
        let weights = dir.join(temporal::store::WEIGHTS_FILE);
        let header = safetensors_header(&std::fs::read(&weights).with_context(|| {
            format!(
                "{}: the model folder has no readable weights",
                weights.display()
            )
        })?)
        .map_err(|e| anyhow!("{}: {e}", weights.display()))?;
        card.check_tensors(&header)
            .map_err(|e| anyhow!("{} does not match {CARD}: {e}", weights.display()))?;
        Ok(card)
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
mod tests {
    use burn::prelude::*;
    use temporal::CellKind;

    use super::*;

    /// A small classify folder (8-wide features, 2 classes) that loads: card, labels, weights.
    fn folder(name: &str) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::Builder::new()
            .prefix(name)
            .tempdir()
            .expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let config = TemporalConfig::new(CellKind::Gru, Head::Classify { classes: 2 })
            .with_input_dim(8)
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
                feature_dim: 8,
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
        };
        card.write(&dir).expect("write card");
        (tmp, dir)
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

//! The binary's half of the program: command-line arguments, their translation into the
//! library's settings structs before any work, progress bars and exit codes, and one glue
//! module per command in `commands/`.

pub mod commands;
pub mod exit;
pub mod interrupt;
pub mod progress;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueHint};
use pipeline::analysis::AnalysisSettings;
use pipeline::backbone::BackboneSettings;
use pipeline::data::DataSettings;
use pipeline::sampling::SamplingSettings;

/// Video understanding on your files: what is in each frame (a CNN), and what happens over time.
#[derive(Debug, Parser)]
#[command(
    name = "pipeline",
    version,
    about,
    propagate_version = true,
    after_help = exit::HELP
)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The main job: what is in view at each sampled frame, what the temporal head expects
    /// next, how surprising each moment was, and the events, as JSON Lines or CSV.
    Run(RunArgs),
    /// `run` over files and directories: one output per input, resumable, shardable across
    /// machines; bad inputs go to OUT_DIR/errors.jsonl and the rest carry on.
    ///
    /// Exit status: 0 when every input is done (or was already), 1 when some input failed (see
    /// errors.jsonl), 2 when the job could not start (bad arguments, no inputs, no model), 3
    /// when it could not finish (its summary could not be written).
    Batch(BatchArgs),
    /// Per-frame CNN features of videos, one safetensors file per video.
    Extract(ExtractArgs),
    /// ImageNet top-K labels for images and for the sampled frames of videos.
    Classify(ClassifyArgs),
    /// Version, the devices this machine offers, and what `--device auto` picks.
    Info,
    /// Frames/s of decoding, the CNN and the temporal head alone, and of extract and run end
    /// to end, on one file.
    Bench(BenchArgs),
    /// Train a recurrent head (LSTM/GRU/RNN) on labelled clips, or a forecaster on any videos.
    ///
    /// Splits: training fits the head, validation is reported each epoch (and chooses the kept
    /// epoch under --select best), test is scored once at the end and chooses nothing. Clips
    /// the data does not place are split by whole groups (a manifest's group column, else
    /// --group-by, else the video file), so footage is never both trained on and scored.
    ///
    /// Sampling: without --fps, --stride or --keyframes, classify samples --clip-len steps over the median
    /// clip (at most 30 per second: a 2 s clip at 10 fps gives every frame), anticipate and
    /// forecast 4 per second; config.json records the choice and why.
    Train(TrainArgs),
    /// Accuracy, macro-F1 and confusion matrix of a trained model, beside the order-blind
    /// baseline (or, for a forecaster, its error beside the persistence baseline).
    Eval(EvalArgs),
    /// Write a labelled clip set: the synthetic shapes whose classes differ only in the order of
    /// frames (a shape that grows, shrinks, pulses or dips; samples/motion is this with the
    /// defaults), or with --kind camera, camera-motion clips cut from your own videos.
    MakeClips(MakeClipsArgs),
}

#[derive(Debug, Args)]
pub struct MakeClipsArgs {
    /// Output folder: OUT/<class>/<class>_NNN.mp4 (shapes), OUT/<class>/<source>-NNN.mp4
    /// (camera).
    #[arg(long, short, value_hint = ValueHint::DirPath)]
    pub out: PathBuf,
    /// shapes: generated shapes that grow, shrink, pulse or dip (only their order tells them
    /// apart); camera: a virtual camera panning left or right, zooming in or out, or holding
    /// still over the videos given with --from (2 s clips, 320 pixels wide).
    #[arg(long, value_enum, default_value_t = ClipKind::Shapes)]
    pub kind: ClipKind,
    /// --kind camera: the videos to cut clips from (repeat, or list several).
    #[arg(long, value_name = "VIDEO", num_args = 1.., value_hint = ValueHint::FilePath)]
    pub from: Vec<PathBuf>,
    /// Clips per class (camera: per class and source video) [default: 128 shapes, 24 camera].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub per_class: Option<u32>,
    /// Seeds every clip's shape, colours and sizes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// What `make-clips` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClipKind {
    Shapes,
    Camera,
}

/// Record formats of `run` and `batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per sampled frame.
    Jsonl,
    /// One row per sampled frame, a header first.
    Csv,
}

impl From<Format> for pipeline::run::records::Format {
    fn from(f: Format) -> Self {
        match f {
            Format::Jsonl => Self::Jsonl,
            Format::Csv => Self::Csv,
        }
    }
}

/// What `run` and `batch` compute per frame.
#[derive(Debug, Clone, Args)]
pub struct AnalysisArgs {
    /// A folder written by `pipeline train`; default: the built-in forecaster
    /// (models/forecaster). Its sampling is used unless --fps/--stride say otherwise.
    #[arg(long, value_name = "MODEL_DIR", value_hint = ValueHint::DirPath)]
    pub model: Option<PathBuf>,
    /// ImageNet classes (and head classes) per record.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub top: u32,
    /// Anomaly detection's sensitivity: higher finds more (and raises more false alarms),
    /// lower fewer; the README has the measured curve.
    #[arg(long, default_value_t = 1.0, value_name = "S", value_parser = positive)]
    pub sensitivity: f64,
    /// Seconds a stream that had been changing must stay still to be reported frozen.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS", value_parser = positive)]
    pub freeze_after: f64,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub model_args: ModelArgs,
}

/// A finite number above zero.
fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a positive number, got {text:?}")),
    }
}

impl AnalysisArgs {
    pub fn settings(&self) -> AnalysisSettings {
        AnalysisSettings {
            model: self.model.clone(),
            top: self.top,
            sampling: self.sampling.settings(),
            backbone: self.model_args.settings(),
            anomaly: pipeline::analysis::AnomalySettings {
                sensitivity: self.sensitivity,
                freeze_after: self.freeze_after,
            },
            read: media::ReadOptions::default(),
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The video: a file, a URL (rtsp://, rtmp://, http(s)://, udp://, tcp://, srt://...), `-`
    /// for standard input (MPEG-TS or Matroska), or a device or generator with
    /// --input-format (`--input-format v4l2 /dev/video0`, `--input-format lavfi
    /// testsrc2=rate=25`).
    ///
    /// Several sources run at once on one backbone; each gets its own outputs in the --out,
    /// --plot and --annotate folders.
    #[arg(value_hint = ValueHint::AnyPath, value_name = "SOURCE", required = true)]
    pub inputs: Vec<OsString>,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Write the records here instead of stdout: for a file, complete or not at all; for a
    /// live source, as they come. With several sources, a folder (needed).
    #[arg(long, short, value_hint = ValueHint::FilePath)]
    pub out: Option<PathBuf>,
    /// Record format [default: csv for an --out ending in .csv, else jsonl]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// A timeline PNG: surprise, top class probabilities, events (with several sources, a
    /// folder).
    #[arg(long, value_name = "FILE.png", value_hint = ValueHint::FilePath)]
    pub plot: Option<PathBuf>,
    /// The sampled frames with labels, predictions and surprise drawn on, encoded as video
    /// (with several sources, a folder).
    #[arg(long, value_name = "FILE.mp4", value_hint = ValueHint::FilePath)]
    pub annotate: Option<PathBuf>,
    /// Longer side of the --annotate video's frames: the whole source frames, scaled down to
    /// this (never up; sides made even), display rotation applied.
    #[arg(long, value_name = "PIXELS", default_value_t = 1280, requires = "annotate",
          value_parser = clap::value_parser!(u32).range(64..=4096))]
    pub annotate_size: u32,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

/// How a source is opened and read.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The demuxer or capture device to read SOURCE with, as FFmpeg names it (`v4l2`, `lavfi`,
    /// `mpegts`, ...; `ffmpeg -formats` lists them).
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<String>,
    /// An option for the demuxer or protocol, by FFmpeg's name (the ffmpeg CLI's input
    /// options): `rtsp_transport=tcp` (RTSP over the control connection, for cameras behind
    /// NAT or a firewall), `rtsp_flags=listen` (wait for a sender to push RTSP),
    /// `video_size=1280x720` (a capture device). Repeat for several; one neither the demuxer
    /// nor its protocol uses is warned about. With several sources, every source gets them.
    #[arg(long = "input-option", value_name = "KEY=VALUE", value_parser = parse_option)]
    pub input_options: Vec<(String, String)>,
    /// Read a file at its own rate, as if it were live (the ffmpeg CLI's -re).
    #[arg(long)]
    pub realtime: bool,
    /// Seconds without data after which a read gives up: opening fails, or a live stream
    /// reconnects or ends.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = positive)]
    pub timeout: f64,
    /// Live network streams: times in a row to reconnect after the stream stalls or closes
    /// (waiting 0.5 s, then twice as long each time, at most 10 s), or `forever`.
    #[arg(long, value_name = "N|forever", default_value = "3", value_parser = parse_reconnect)]
    pub reconnect: u32,
}

impl SourceArgs {
    pub fn source(&self, input: &std::ffi::OsStr) -> media::Source {
        media::Source::parse(input, self.input_format.as_deref())
            .realtime(self.realtime)
            .with_options(self.input_options.clone())
    }

    /// How to read, stopping when `stop` is raised.
    pub fn read(&self, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> media::ReadOptions {
        media::ReadOptions {
            timeout: Some(Duration::from_secs_f64(self.timeout)),
            reconnect: self.reconnect,
            stop: Some(stop),
        }
    }
}

fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

fn parse_reconnect(text: &str) -> Result<u32, String> {
    match text {
        "forever" => Ok(u32::MAX),
        n => n
            .parse::<u32>()
            .ok()
            .filter(|&n| n < u32::MAX)
            .ok_or_else(|| format!("expected a number of reconnects or `forever`, got {text:?}")),
    }
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Video files and directories (walked recursively for video files), in this order.
    #[arg(required = true, value_hint = ValueHint::AnyPath)]
    pub inputs: Vec<PathBuf>,
    /// Output directory: `<relative path>.jsonl` (or .csv) and `<relative path>.summary.json`
    /// per input, `errors.jsonl`, `summary.json`.
    #[arg(long, short, value_hint = ValueHint::DirPath)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Videos processed at once, each decoding on its own thread while the others use the
    /// model.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Only this machine's share `I/N` (0-based I): inputs are assigned by a hash of their
    /// relative path, so N machines with the same arguments cover every input exactly once.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
    /// Redo inputs whose output is already complete and current.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("'{s}': expected I/N, e.g. 0/4"))?;
    let (i, n) = (
        i.trim().parse::<u32>().map_err(|e| format!("'{i}': {e}"))?,
        n.trim().parse::<u32>().map_err(|e| format!("'{n}': {e}"))?,
    );
    if n == 0 || i >= n {
        return Err(format!("'{s}': need 0 <= I < N"));
    }
    Ok((i, n))
}

/// What a temporal head learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Task {
    /// The clip's class, read at its last step.
    Classify,
    /// At each step, the class active --horizon seconds later.
    Anticipate,
    /// The embedding --horizon seconds later (no labels needed); its error is the surprise.
    Forecast,
}

impl From<Task> for pipeline::model_dir::Task {
    fn from(t: Task) -> Self {
        match t {
            Task::Classify => Self::Classify,
            Task::Anticipate => Self::Anticipate,
            Task::Forecast => Self::Forecast,
        }
    }
}

/// The recurrent cell (`rnn`: the plain tanh cell, to see what gating buys on your data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cell {
    Lstm,
    Gru,
    Rnn,
}

impl From<Cell> for temporal::CellKind {
    fn from(c: Cell) -> Self {
        match c {
            Cell::Lstm => Self::Lstm,
            Cell::Gru => Self::Gru,
            Cell::Rnn => Self::Rnn,
        }
    }
}

/// The nonlinearity after the head's input projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Activation {
    Relu,
    None,
}

impl From<Activation> for temporal::Activation {
    fn from(a: Activation) -> Self {
        match a {
            Activation::Relu => Self::Relu,
            Activation::None => Self::Identity,
        }
    }
}

/// The learning rate over the epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LrSchedule {
    Constant,
    Cosine,
}

impl From<LrSchedule> for temporal::train::Schedule {
    fn from(s: LrSchedule) -> Self {
        match s {
            LrSchedule::Constant => Self::Constant,
            LrSchedule::Cosine => Self::Cosine,
        }
    }
}

/// How `train` scales input features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Normalize {
    PerFeature,
    Global,
    None,
}

impl From<Normalize> for temporal::train::Normalization {
    fn from(n: Normalize) -> Self {
        match n {
            Normalize::PerFeature => Self::PerFeature,
            Normalize::Global => Self::Global,
            Normalize::None => Self::None,
        }
    }
}

/// `train --fusion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FusionArg {
    Early,
    Late,
}

impl From<FusionArg> for pipeline::train::Fusion {
    fn from(f: FusionArg) -> Self {
        match f {
            FusionArg::Early => Self::Early,
            FusionArg::Late => Self::Late,
        }
    }
}

/// Which epoch's model `train` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Select {
    Last,
    Best,
}

impl From<Select> for temporal::train::Selection {
    fn from(s: Select) -> Self {
        match s {
            Select::Last => Self::Last,
            Select::Best => Self::Best,
        }
    }
}

/// Training data and feature extraction shared by `train` and `eval`.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Class folders (ROOT/<class>/<clip>, optionally under ROOT/train, ROOT/val and
    /// ROOT/test), a CSV manifest (path,label[,start,end][,split][,group]), or for --task
    /// forecast any folder of videos.
    #[arg(long, value_name = "PATH", value_hint = ValueHint::AnyPath)]
    pub data: PathBuf,
    /// Feature cache: features are extracted once per clip content, backbone and sampling
    /// [default: $XDG_CACHE_HOME/video-pipeline/features or ~/.cache/video-pipeline/features]
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub cache: Option<PathBuf>,
    /// auto: a real GPU through wgpu if there is one, else the CPU.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Frames per CNN batch while extracting features.
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub cnn_batch: u32,
    /// Backbone weights to use instead of the built-in ones (.pth or .safetensors).
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub weights: Option<PathBuf>,
}

impl DataArgs {
    pub fn settings(&self) -> DataSettings {
        DataSettings {
            data: self.data.clone(),
            cache: self.cache.clone(),
            backbone: BackboneSettings {
                device: self.device.into(),
                batch: self.cnn_batch,
                weights: self.weights.clone(),
                // Features that train or are compared with a trained head's are f32.
                precision: pipeline::backbone::Precision::F32,
                kernels: None,
            },
        }
    }
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// What the head learns: the clip's class, the class --horizon seconds ahead, or the
    /// embedding --horizon seconds ahead (no labels needed).
    #[arg(long, value_enum, default_value_t = Task::Classify)]
    pub task: Task,
    /// Output folder: model.safetensors, config.json, labels.json, metrics.json, curves.png,
    /// confusion.png, baseline.safetensors, checkpoint/. A head fused late (--fusion) keeps a
    /// model folder per stream in it instead of its own weights: features/, motion/.
    #[arg(long, short, value_name = "MODEL_DIR", value_hint = ValueHint::DirPath)]
    pub out: PathBuf,
    /// The recurrent cell (rnn: the plain tanh cell, to see what gating buys on your data).
    #[arg(long, value_enum, default_value_t = Cell::Lstm)]
    pub cell: Cell,
    /// Hidden state size of each recurrent layer.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=8192))]
    pub hidden: u32,
    /// Stacked recurrent layers.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub layers: u32,
    /// The nonlinearity after the 256-d input projection (none: a linear projection, as heads
    /// trained before it was an option).
    #[arg(long, value_enum, default_value_t = Activation::Relu)]
    pub activation: Activation,
    /// Dropout on the (normalised) input features and between recurrent layers.
    #[arg(long, default_value_t = 0.3)]
    pub dropout: f64,
    /// Dropout after the projection as well.
    #[arg(long)]
    pub projection_dropout: bool,
    /// Epochs to train (--select best may stop earlier, after --patience epochs without
    /// improvement).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: u32,
    /// Which epoch's model to keep: the last (a fixed schedule; validation is reported but
    /// chooses nothing), or the one with the best validation score [default: last for classify
    /// and anticipate, best for forecast]
    #[arg(long = "select", value_enum)]
    pub selection: Option<Select>,
    /// --select best: epochs without a better validation score before stopping.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub patience: u32,
    /// Learning rate (AdamW; the peak rate under --schedule cosine).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// The learning rate over the epochs: constant, or cosine-decayed to a tenth.
    #[arg(long, value_enum, default_value_t = LrSchedule::Constant)]
    pub schedule: LrSchedule,
    /// How input features are scaled, from the training set's statistics: each feature by its
    /// own mean and deviation, all by one pooled mean and deviation (keeps their relative
    /// scale), or not at all [default: none for classify and anticipate, per-feature for
    /// forecast]
    #[arg(long = "normalize", value_enum)]
    pub normalization: Option<Normalize>,
    /// AdamW's decoupled weight decay.
    #[arg(long, default_value_t = 1e-2)]
    pub weight_decay: f64,
    /// AdamW's epsilon (PyTorch's default; burn's 1e-5 scored 2 points lower on held-out
    /// clips, see the README).
    #[arg(long, default_value_t = 1e-8, value_name = "EPS")]
    pub adam_epsilon: f64,
    /// Sequences per training batch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch: u32,
    /// Steps per sequence: shorter clips are used whole, longer ones sampled uniformly to it
    /// (anticipate/forecast: windows of this many steps).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(2..=4096))]
    pub clip_len: u32,
    /// anticipate / forecast: how far ahead, in seconds.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub horizon: f64,
    /// Share of each class's groups held out for validation when the data does not say which
    /// clips validate. Validation is reported every epoch; it chooses the kept epoch only under
    /// --select best.
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
    /// Share of each class's groups held out for test when the data has no test split of its
    /// own (ROOT/test/, a manifest's `test` rows). Test is scored once, after training, and
    /// chooses nothing: report its number.
    #[arg(long, default_value_t = 0.0)]
    pub test_fraction: f64,
    /// Groups clips by the footage they were cut from: the part of each file name this
    /// regular expression matches (its first capture group, if any), e.g. '^(.+)_\d+' for
    /// `street3_017.mp4` -> `street3`. Clips of one group always land in the same split, so
    /// no footage is both trained on and scored. A manifest's `group` column wins; without
    /// either, each video file is its own group.
    #[arg(long, value_name = "REGEX")]
    pub group_by: Option<String>,
    /// Seeds the split, initialisation, dropout and batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// What the head reads at each step, as a comma list: `features` (the CNN's 1280), `motion`
    /// (the 58-value motion descriptor: camera pan, zoom, roll; object motion on a 4x4 grid;
    /// coverage; see the README), or `features,motion` (both: see --fusion).
    #[arg(long, default_value = "features", value_name = "LIST")]
    pub inputs: String,
    /// How a head reading several --inputs combines them. `late` (the default for classify
    /// and anticipate): a head per stream, in subfolders of MODEL_DIR, their class
    /// probabilities weighed by how well each did on clips it never trained on (the
    /// validation split, else out-of-fold predictions over the training split's groups: each
    /// stream's head is trained once more per fold). `early` (forecast's only choice): one
    /// head on the streams side by side.
    #[arg(long, value_enum)]
    pub fusion: Option<FusionArg>,
    /// Carry on an interrupted run from the last checkpoint in MODEL_DIR.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A folder written by `pipeline train`.
    #[arg(long, value_name = "MODEL_DIR", value_hint = ValueHint::DirPath)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Which clips to score [default: test when the data has a test split, else val; all clips
    /// of data that has no split and is not the training data]
    #[arg(long, value_enum)]
    pub split: Option<EvalSplit>,
    /// One JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Clips `eval` scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalSplit {
    Train,
    Val,
    /// The held-out clips that chose nothing during training.
    Test,
    All,
}

impl From<EvalSplit> for pipeline::evaluate::EvalSplit {
    fn from(s: EvalSplit) -> Self {
        match s {
            EvalSplit::Train => Self::Train,
            EvalSplit::Val => Self::Val,
            EvalSplit::Test => Self::Test,
            EvalSplit::All => Self::All,
        }
    }
}

/// Which part of the work `bench` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// Each of the stages below in turn.
    All,
    /// Demux, decode, sample, scale and crop.
    Decode,
    /// The backbone alone on batches already in memory.
    Cnn,
    /// `extract` without writing: decode and CNN overlapped.
    Extract,
    /// The temporal head alone, stepping through batches of features already in memory.
    Head,
    /// `run` without writing: decode, CNN, ImageNet top-k, the head and events.
    Run,
    /// Not part of `all`: where the CNN stage's time goes, layer by layer (on a GPU, the device
    /// synchronised after each; on the CPU, each layer's thread time inside the fused kernels).
    Layers,
}

impl From<Stage> for pipeline::bench::Stage {
    fn from(s: Stage) -> Self {
        match s {
            Stage::All => Self::All,
            Stage::Decode => Self::Decode,
            Stage::Cnn => Self::Cnn,
            Stage::Extract => Self::Extract,
            Stage::Head => Self::Head,
            Stage::Run => Self::Run,
            Stage::Layers => Self::Layers,
        }
    }
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The video to time.
    #[arg(value_hint = ValueHint::FilePath)]
    pub input: PathBuf,
    /// One stage, or several separated by commas (`cnn,layers`): one model load and one
    /// kernel autotuning for all of them.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    pub stage: Vec<Stage>,
    /// Timed runs per stage (after one untimed warm-up).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeats: u32,
    /// The temporal head for the head and run stages; default: the built-in forecaster.
    #[arg(long, value_name = "MODEL_DIR", value_hint = ValueHint::DirPath)]
    pub head: Option<PathBuf>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Which frames are read from a video. Shared by every command that reads video.
#[derive(Debug, Clone, Args)]
pub struct SamplingArgs {
    /// Sample at this many frames per second of video time (first frame at or after each tick).
    #[arg(long, value_name = "F", conflicts_with = "stride")]
    pub fps: Option<f64>,
    /// Take every K-th decoded frame.
    #[arg(long, value_name = "K")]
    pub stride: Option<u64>,
    /// Only key frames (the decoder skips the others without decoding them).
    #[arg(long)]
    pub keyframes: bool,
    /// Start at this time in seconds (seeks, then decodes accurately up to it).
    #[arg(long, value_name = "S")]
    pub start: Option<f64>,
    /// Stop at this time in seconds (exclusive).
    #[arg(long, value_name = "S")]
    pub end: Option<f64>,
    /// Side of the square model input: shorter side scaled to it, then centre crop.
    #[arg(long, default_value_t = 224, value_name = "PIXELS")]
    pub size: u32,
    /// Where each frame's motion (camera pan, zoom, roll; object motion) comes from: the
    /// codec's own motion vectors where it has them (H.264, MPEG-1/2/4), else estimated from the
    /// pixels (auto); always estimated; or off. Never with --keyframes; `classify` measures none,
    /// `train` and `eval` only for heads that read motion.
    #[arg(long, value_enum, default_value_t = MotionChoice::Auto)]
    pub motion: MotionChoice,
    /// --motion off.
    #[arg(long, conflicts_with = "motion")]
    pub no_motion: bool,
}

/// Where motion comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MotionChoice {
    Auto,
    Estimated,
    Off,
}

impl SamplingArgs {
    pub fn settings(&self) -> SamplingSettings {
        SamplingSettings {
            fps: self.fps,
            stride: self.stride,
            keyframes: self.keyframes,
            start: self.start,
            end: self.end,
            size: self.size,
            motion: match (self.no_motion, self.motion) {
                (true, _) | (_, MotionChoice::Off) => media::MotionSource::Off,
                (_, MotionChoice::Auto) => media::MotionSource::Auto,
                (_, MotionChoice::Estimated) => media::MotionSource::Estimated,
            },
        }
    }
}

/// Where the CNN runs and with which weights.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// auto: a real GPU through wgpu if there is one, else the CPU.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Frames per CNN batch.
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch: u32,
    /// Backbone weights to use instead of the built-in ones (.pth or .safetensors).
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub weights: Option<PathBuf>,
    /// The CNN's float type. f16 needs a GPU with f16 shaders (--device wgpu); bf16 a CPU
    /// with AVX-512 BF16 (`pipeline info` says whether this one has it). Both keep features
    /// within cosine 0.999 of f32.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// The CPU kernels the CNN runs in: the fastest this CPU has (`pipeline info` says which),
    /// or one to time or compare against (every path is within the golden tolerance).
    #[arg(long, value_enum, default_value_t = Kernels::Auto)]
    pub kernels: Kernels,
}

impl ModelArgs {
    pub fn settings(&self) -> BackboneSettings {
        BackboneSettings {
            device: self.device.into(),
            batch: self.batch,
            weights: self.weights.clone(),
            precision: self.precision.into(),
            kernels: match self.kernels {
                Kernels::Auto => None,
                Kernels::Avx512 => Some(vision::cpu::KernelPath::Avx512),
                Kernels::Avx2 => Some(vision::cpu::KernelPath::Avx2),
                Kernels::Neon => Some(vision::cpu::KernelPath::Neon),
                Kernels::Portable => Some(vision::cpu::KernelPath::Portable),
            },
        }
    }
}

/// `--kernels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kernels {
    /// The fastest this CPU has.
    Auto,
    /// x86-64 with AVX-512F: 1x1 convolutions in 512-bit registers, the rest as avx2.
    Avx512,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// aarch64 (ARM) with NEON.
    Neon,
    /// Any CPU: 1x1 convolutions in `gemm`, depthwise convolutions in plain loops.
    Portable,
}

/// `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    /// A real GPU through wgpu when there is one, else the CPU.
    Auto,
    /// The CPU: the CNN in `vision::cpu`'s kernels, the temporal heads in burn-flex.
    Cpu,
    /// wgpu's preferred adapter, even a software one (lavapipe).
    Wgpu,
}

impl From<DeviceChoice> for pipeline::device::DeviceChoice {
    fn from(d: DeviceChoice) -> Self {
        match d {
            DeviceChoice::Auto => Self::Auto,
            DeviceChoice::Cpu => Self::Cpu,
            DeviceChoice::Wgpu => Self::Wgpu,
        }
    }
}

/// `--precision`: the float type the CNN computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Precision {
    F32,
    /// Half precision, on GPUs with f16 shaders: half the memory traffic.
    F16,
    /// bfloat16 1x1 convolutions on CPUs with AVX-512 BF16 (AMD Zen 4 and later, Intel Cooper
    /// Lake, Sapphire Rapids and later): twice the products per instruction, sums in f32.
    Bf16,
}

impl From<Precision> for pipeline::backbone::Precision {
    fn from(p: Precision) -> Self {
        match p {
            Precision::F32 => Self::F32,
            Precision::F16 => Self::F16,
            Precision::Bf16 => Self::Bf16,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Video files or directories (walked recursively for video files); or live sources and
    /// standard input, as `run` takes them.
    #[arg(required = true, value_hint = ValueHint::AnyPath, value_name = "SOURCE")]
    pub inputs: Vec<OsString>,
    /// Output directory: `<stem>.safetensors` per video, directory structure mirrored; a
    /// live source's `<name>-<UTC start>.safetensors` per --segment.
    #[arg(long, short, value_hint = ValueHint::DirPath)]
    pub out: PathBuf,
    /// Live sources: seconds of stream per file (each written when complete: a killed run
    /// loses at most one).
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = positive)]
    pub segment: f64,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Images (PNG, JPEG), videos, or directories of them.
    #[arg(required = true, value_hint = ValueHint::AnyPath)]
    pub inputs: Vec<PathBuf>,
    /// How many classes to show per image or frame.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub top: u32,
    /// One JSON object per image or frame (JSON Lines) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(args: &[&str]) -> anyhow::Result<media::DecodeOptions> {
        let mut argv = vec!["pipeline", "extract", "x.mp4", "--out", "o"];
        argv.extend(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Extract(a) => a.sampling.settings().options(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn sampling_flags_are_validated_before_work() {
        use media::Every;
        assert_eq!(
            sampling(&["--fps", "2"]).expect("ok").sampling.every,
            Every::Fps(2.0)
        );
        assert_eq!(
            sampling(&["--stride", "3"]).expect("ok").sampling.every,
            Every::Stride(3)
        );
        assert!(sampling(&["--fps", "0"]).is_err());
        assert!(sampling(&["--stride", "0"]).is_err());
        assert!(sampling(&["--fps", "2", "--stride", "3"]).is_err());
        assert!(sampling(&["--start", "5", "--end", "2"]).is_err());
        assert!(sampling(&["--start", "-1"]).is_err());
        assert!(sampling(&["--size", "8"]).is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

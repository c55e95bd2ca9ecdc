//! `pipeline run`: the main job on one video. Decoding runs on its own thread, the CNN takes
//! batches from a bounded queue, the temporal head steps its state forward batch by batch, and a
//! writer thread formats, annotates and writes, so memory stays flat on long videos.
//!
//! The per-video analysis ([`Analysis::video`]) is shared with `batch`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow};
use burn::prelude::*;
use image::{Rgb, RgbImage};
use serde::Serialize;

use super::classify::{Scored, top_k};
use super::video_batches;
use crate::backbone::Backbone;
use crate::cli::{AnalysisArgs, Format, RunArgs, Task};
use crate::decode::{DecodeOptions, DecodeReport, Every};
use crate::encode::VideoWriter;
use crate::head::{StepOutput, StreamingHead};
use crate::{Failures, plot};

/// A head class and its probability.
#[derive(Debug, Clone, Serialize)]
pub struct Named {
    pub label: String,
    pub probability: f32,
}

/// What the temporal head says at a frame.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "task", rename_all = "lowercase")]
pub enum HeadRecord {
    /// What is happening now, by the head's classes.
    Classify { top: Vec<Named> },
    /// What will be happening `horizon_seconds` from now.
    Anticipate {
        horizon_seconds: f64,
        top: Vec<Named>,
    },
    /// What is expected in view `horizon_seconds` from now: the forecast embedding through
    /// the ImageNet classifier.
    Forecast {
        horizon_seconds: f64,
        expected: Vec<Scored>,
    },
}

/// One sampled frame.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Seconds, from the stream's timestamps.
    pub timestamp: f64,
    /// The sampled frame's number: 0, 1, 2, ...
    pub frame: u64,
    /// ImageNet top-k of the frame.
    pub top: Vec<Scored>,
    pub head: HeadRecord,
    /// Forecast heads: how far the frame's embedding is from what was forecast for it (mean
    /// squared difference per normalised feature); null until the first forecast comes due.
    pub surprise: Option<f64>,
    /// `surprise` (a peak: over 3 standard deviations above the video's surprise so far),
    /// `view: A -> B` (the frame's top ImageNet class changed and held for two frames),
    /// `head: A -> B` (the head's top class changed likewise).
    pub events: Vec<String>,
}

/// An event, for summaries.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Event {
    pub timestamp: f64,
    pub text: String,
    /// The surprise at a surprise peak.
    pub surprise: Option<f64>,
}

/// What a finished video reports.
#[derive(Debug, Clone, Serialize)]
pub struct VideoSummary {
    pub frames: u64,
    /// Seconds of video covered, first to last sampled frame.
    pub video_seconds: f64,
    pub wall_seconds: f64,
    pub frames_per_second: f64,
    pub events: Vec<Event>,
    pub damaged: u64,
}

impl VideoSummary {
    /// The surprise peaks, largest first, then the other events, at most `n`.
    pub fn top_events(&self, n: usize) -> Vec<&Event> {
        let mut peaks: Vec<&Event> = self
            .events
            .iter()
            .filter(|e| e.surprise.is_some())
            .collect();
        peaks.sort_by(|a, b| {
            b.surprise
                .unwrap_or(0.0)
                .total_cmp(&a.surprise.unwrap_or(0.0))
        });
        peaks
            .into_iter()
            .chain(self.events.iter().filter(|e| e.surprise.is_none()))
            .take(n)
            .collect()
    }
}

/// The backbone, the head and the settings, ready for any number of videos.
#[derive(Debug)]
pub struct Analysis {
    pub backbone: Backbone,
    pub head: StreamingHead,
    pub options: DecodeOptions,
    top: usize,
    batch: usize,
}

impl Analysis {
    /// Loads the head (its card decides the sampling unless the flags override it) and the
    /// backbone on the chosen device.
    pub fn prepare(args: &AnalysisArgs) -> Result<Self> {
        let head = StreamingHead::load(args.model.as_deref())?;
        let card = &head.card;
        let mut sampling = args.sampling.clone();
        if sampling.fps.is_none() && sampling.stride.is_none() {
            sampling.fps = card.sampling.fps;
            sampling.stride = card.sampling.stride;
            sampling.keyframes |= card.sampling.keyframes;
        } else if crate::model_dir::SamplingCard::from_args(&sampling).fps != card.sampling.fps
            || sampling.stride != card.sampling.stride
        {
            tracing::warn!(
                "the head was trained on steps {:.3} s apart ({:?}); with other sampling its sense of time (and horizon) does not hold",
                card.step_seconds,
                card.sampling
            );
        }
        if sampling.size != card.sampling.size {
            tracing::warn!(
                "the head was trained on {0}x{0} inputs, not {1}x{1}",
                card.sampling.size,
                sampling.size
            );
        }
        let options = sampling.options()?;
        let selected = crate::device::select(args.model_args.device)?;
        tracing::info!("device: {}; head: {}", selected.description, head.source);
        let backbone = Backbone::load(&args.model_args, options.size, &selected.device)?;
        if backbone.fingerprint != card.backbone.fingerprint {
            tracing::warn!(
                "the head was trained on features of {}, these are {}",
                card.backbone.fingerprint,
                backbone.fingerprint
            );
        }
        Ok(Self {
            backbone,
            head,
            options,
            top: args.top as usize,
            batch: args.model_args.batch as usize,
        })
    }

    /// Runs one video, handing `emit` each record (and its frame when `keep_frames`).
    pub fn video(
        &mut self,
        path: &Path,
        keep_frames: bool,
        mut emit: impl FnMut(Record, Option<Vec<u8>>) -> Result<()>,
    ) -> Result<VideoSummary> {
        let Self {
            backbone,
            head,
            options,
            top: k,
            batch,
        } = self;
        let k = *k;
        head.reset();
        let started = Instant::now();
        let mut events = Events::default();
        let (mut frames, mut first, mut last) = (0u64, None, 0.0);
        let size = options.size as usize;
        let card = head.card.clone();
        let run = video_batches(path, options, backbone, *batch, keep_frames, |b| {
            let n = b.timestamps.len();
            let values = b.host_features()?;
            let tops = top_k(backbone.classify(b.features), k)?;
            let steps = head.step(&values, n)?;
            let expected = expected(backbone, &steps, k)?;
            let mut expected = expected.into_iter();
            for (i, (top, step)) in tops.into_iter().zip(steps).enumerate() {
                let t = b.timestamps[i];
                first.get_or_insert(t);
                last = t;
                let said = head_record(&card, &step, expected.next().flatten(), k);
                let record = Record {
                    timestamp: t,
                    frame: frames,
                    events: events.observe(t, &top, &said, step.surprise),
                    top,
                    head: said,
                    surprise: step.surprise,
                };
                frames += 1;
                let frame = b
                    .frames
                    .as_ref()
                    .map(|f| f[i * size * size * 3..(i + 1) * size * size * 3].to_vec());
                emit(record, frame)?;
            }
            Ok(())
        })?;
        let wall = started.elapsed().as_secs_f64();
        Ok(VideoSummary {
            frames,
            video_seconds: first.map_or(0.0, |f| last - f),
            wall_seconds: wall,
            frames_per_second: frames as f64 / wall.max(1e-9),
            events: events.list,
            damaged: damaged(&run.decode),
        })
    }
}

/// ImageNet top-k of each forecast embedding (forecast heads).
fn expected(
    backbone: &Backbone,
    steps: &[StepOutput],
    k: usize,
) -> Result<Vec<Option<Vec<Scored>>>> {
    let rows: Vec<f32> = steps
        .iter()
        .filter_map(|s| s.forecast.as_deref())
        .flatten()
        .copied()
        .collect();
    if rows.is_empty() {
        return Ok(vec![None; steps.len()]);
    }
    let n = rows.len() / vision::FEATURE_DIM;
    let features = Tensor::<2>::from_data(
        TensorData::new(rows, [n, vision::FEATURE_DIM]),
        &backbone.device(),
    );
    Ok(top_k(backbone.classify(features), k)?
        .into_iter()
        .map(Some)
        .collect())
}

fn damaged(report: &DecodeReport) -> u64 {
    report.damaged
}

fn head_record(
    card: &crate::model_dir::ModelCard,
    step: &StepOutput,
    expected: Option<Vec<Scored>>,
    k: usize,
) -> HeadRecord {
    let named = |p: &[f32]| -> Vec<Named> {
        let mut idx: Vec<usize> = (0..p.len()).collect();
        idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
        idx.into_iter()
            .take(k)
            .map(|i| Named {
                label: card
                    .classes
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| i.to_string()),
                probability: p[i],
            })
            .collect()
    };
    let horizon_seconds = card
        .horizon_seconds
        .unwrap_or(card.horizon_steps as f64 * card.step_seconds);
    match card.task {
        Task::Classify => HeadRecord::Classify {
            top: step.probabilities.as_deref().map(named).unwrap_or_default(),
        },
        Task::Anticipate => HeadRecord::Anticipate {
            horizon_seconds,
            top: step.probabilities.as_deref().map(named).unwrap_or_default(),
        },
        Task::Forecast => HeadRecord::Forecast {
            horizon_seconds,
            expected: expected.unwrap_or_default(),
        },
    }
}

/// Online event detection: surprise peaks against the video's surprise so far, and changes of
/// the top class that hold for two frames.
#[derive(Debug, Default)]
struct Events {
    count: u64,
    mean: f64,
    m2: f64,
    view: Debounced,
    head: Debounced,
    list: Vec<Event>,
}

/// A label that changes only when a new one holds for two frames in a row.
#[derive(Debug, Default)]
struct Debounced {
    stable: Option<String>,
    candidate: Option<String>,
}

impl Debounced {
    /// The change `(from, to)`, when `label` makes one.
    fn observe(&mut self, label: &str) -> Option<(String, String)> {
        match &self.stable {
            None => {
                self.stable = Some(label.to_string());
                None
            }
            Some(s) if s == label => {
                self.candidate = None;
                None
            }
            Some(_) if self.candidate.as_deref() == Some(label) => {
                self.candidate = None;
                let from = self.stable.replace(label.to_string()).unwrap_or_default();
                Some((from, label.to_string()))
            }
            Some(_) => {
                self.candidate = Some(label.to_string());
                None
            }
        }
    }
}

impl Events {
    /// Needs this many surprise values before it calls a peak.
    const WARM_UP: u64 = 8;
    const PEAK_SIGMAS: f64 = 3.0;

    fn observe(
        &mut self,
        t: f64,
        top: &[Scored],
        head: &HeadRecord,
        surprise: Option<f64>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = surprise {
            let std = (self.m2 / self.count.max(1) as f64).sqrt();
            if self.count >= Self::WARM_UP && s > self.mean + Self::PEAK_SIGMAS * std.max(1e-9) {
                out.push("surprise".to_string());
                self.list.push(Event {
                    timestamp: t,
                    text: format!(
                        "surprise {s:.3} ({:.1} sd above the mean so far)",
                        (s - self.mean) / std.max(1e-9)
                    ),
                    surprise: Some(s),
                });
            }
            self.count += 1;
            let delta = s - self.mean;
            self.mean += delta / self.count as f64;
            self.m2 += delta * (s - self.mean);
        }
        if let Some(first) = top.first()
            && let Some((from, to)) = self.view.observe(first.label)
        {
            let text = format!("view: {from} -> {to}");
            out.push(text.clone());
            self.list.push(Event {
                timestamp: t,
                text,
                surprise: None,
            });
        }
        let head_top = match head {
            HeadRecord::Classify { top } | HeadRecord::Anticipate { top, .. } => {
                top.first().map(|n| n.label.as_str())
            }
            HeadRecord::Forecast { .. } => None,
        };
        if let Some(label) = head_top
            && let Some((from, to)) = self.head.observe(label)
        {
            let text = format!("head: {from} -> {to}");
            out.push(text.clone());
            self.list.push(Event {
                timestamp: t,
                text,
                surprise: None,
            });
        }
        out
    }
}

/// One record as a line of `format` (without the newline).
pub fn format_record(record: &Record, format: Format) -> Result<String> {
    Ok(match format {
        Format::Jsonl => serde_json::to_string(record)?,
        Format::Csv => {
            let list = |items: Vec<String>| items.join(";");
            let top = list(
                record
                    .top
                    .iter()
                    .map(|s| format!("{}:{:.4}", s.label, s.probability))
                    .collect(),
            );
            let head = match &record.head {
                HeadRecord::Classify { top } | HeadRecord::Anticipate { top, .. } => list(
                    top.iter()
                        .map(|n| format!("{}:{:.4}", n.label, n.probability))
                        .collect(),
                ),
                HeadRecord::Forecast { expected, .. } => list(
                    expected
                        .iter()
                        .map(|s| format!("{}:{:.4}", s.label, s.probability))
                        .collect(),
                ),
            };
            [
                format!("{:.6}", record.timestamp),
                record.frame.to_string(),
                csv_field(record.top.first().map_or("", |s| s.label)),
                record
                    .top
                    .first()
                    .map_or(String::new(), |s| format!("{:.4}", s.probability)),
                csv_field(&top),
                csv_field(&head),
                record.surprise.map_or(String::new(), |s| format!("{s:.6}")),
                csv_field(&list(record.events.clone())),
            ]
            .join(",")
        }
    })
}

/// The CSV header line (without the newline).
pub const CSV_HEADER: &str = "timestamp,frame,top1,top1_probability,top,head,surprise,events";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Where records go: a file that appears only when complete, or stdout.
pub struct RecordWriter {
    out: Box<dyn std::io::Write + Send>,
    /// `(temporary, final)` when writing a file.
    rename: Option<(PathBuf, PathBuf)>,
    format: Format,
}

impl RecordWriter {
    pub fn create(path: Option<&Path>, format: Format) -> Result<Self> {
        let (out, rename): (Box<dyn std::io::Write + Send>, _) = match path {
            Some(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                let tmp = crate::output::temp_path(path, "records");
                let file = std::fs::File::create(&tmp)
                    .with_context(|| format!("creating {}", tmp.display()))?;
                (
                    Box::new(std::io::BufWriter::new(file)),
                    Some((tmp, path.to_path_buf())),
                )
            }
            None => (Box::new(std::io::BufWriter::new(std::io::stdout())), None),
        };
        let mut w = Self {
            out,
            rename,
            format,
        };
        if format == Format::Csv {
            writeln!(w.out, "{CSV_HEADER}")?;
        }
        Ok(w)
    }

    pub fn write(&mut self, record: &Record) -> Result<()> {
        let line = format_record(record, self.format)?;
        writeln!(self.out, "{line}")?;
        if self.rename.is_none() {
            // stdout: let a reader (`| head`, `| jq`) see frames as they come.
            self.out.flush()?;
        }
        Ok(())
    }

    /// Flushes and, for a file, renames it into place.
    pub fn finish(mut self) -> Result<()> {
        self.out.flush()?;
        if let Some((tmp, path)) = self.rename.take() {
            std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        if let Some((tmp, _)) = self.rename.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

impl std::fmt::Debug for RecordWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordWriter")
            .field("file", &self.rename.as_ref().map(|(_, p)| p))
            .field("format", &self.format)
            .finish()
    }
}

/// A frame's time, surprise and top ImageNet classes.
type TimelinePoint = (f64, Option<f64>, Vec<(&'static str, f32)>);

/// What the writer thread keeps for the timeline plot: per frame, the surprise and the top
/// ImageNet classes.
#[derive(Debug, Default)]
struct Timeline {
    points: Vec<TimelinePoint>,
    events: Vec<(f64, String)>,
}

impl Timeline {
    fn push(&mut self, r: &Record) {
        self.points.push((
            r.timestamp,
            r.surprise,
            r.top.iter().map(|s| (s.label, s.probability)).collect(),
        ));
        for e in &r.events {
            self.events.push((r.timestamp, e.clone()));
        }
    }

    /// Surprise on top, the probabilities of the classes most often on top below, events
    /// marked on both.
    fn render(&self, title: &str) -> RgbImage {
        let markers: Vec<(f64, String)> = self
            .events
            .iter()
            .map(|(t, e)| (*t, e.split(':').next().unwrap_or(e).to_string()))
            .collect();
        // Both panels over the whole video, though surprise starts a horizon late.
        let span = self
            .points
            .first()
            .zip(self.points.last())
            .map(|(a, b)| (a.0, b.0));
        let surprise = plot::LineChart {
            title: format!("{title}: surprise"),
            x_label: "seconds".into(),
            y_label: "surprise".into(),
            series: vec![plot::Series {
                name: "surprise".into(),
                points: self
                    .points
                    .iter()
                    .map(|(t, s, _)| (*t, s.unwrap_or(f64::NAN)))
                    .collect(),
            }],
            markers: markers.clone(),
            y_range: None,
            x_range: span,
        };
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for (_, _, top) in &self.points {
            if let Some((label, _)) = top.first() {
                match counts.iter_mut().find(|(l, _)| l == label) {
                    Some((_, c)) => *c += 1,
                    None => counts.push((label, 1)),
                }
            }
        }
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        let classes = plot::LineChart {
            title: "top ImageNet classes (0 when outside a frame's top k)".into(),
            x_label: "seconds".into(),
            y_label: "probability".into(),
            series: counts
                .iter()
                .take(5)
                .map(|(label, _)| plot::Series {
                    name: (*label).to_string(),
                    points: self
                        .points
                        .iter()
                        .map(|(t, _, top)| {
                            let p = top
                                .iter()
                                .find(|(l, _)| l == label)
                                .map_or(0.0, |(_, p)| *p);
                            (*t, f64::from(p))
                        })
                        .collect(),
                })
                .collect(),
            markers,
            y_range: Some((0.0, 1.0)),
            x_range: span,
        };
        plot::vstack(&[surprise.render(1000, 360), classes.render(1000, 360)])
    }
}

/// Draws the record's labels on its frame.
fn annotate(frame: Vec<u8>, size: u32, record: &Record) -> RgbImage {
    let mut img =
        RgbImage::from_raw(size, size, frame).unwrap_or_else(|| RgbImage::new(size, size));
    let mut lines = vec![format!("{:.2} s", record.timestamp)];
    if let Some(s) = record.top.first() {
        lines.push(format!("{} {:.0}%", s.label, 100.0 * s.probability));
    }
    match &record.head {
        HeadRecord::Classify { top } => {
            if let Some(n) = top.first() {
                lines.push(format!("now: {} {:.0}%", n.label, 100.0 * n.probability));
            }
        }
        HeadRecord::Anticipate {
            top,
            horizon_seconds,
        } => {
            if let Some(n) = top.first() {
                lines.push(format!(
                    "in {horizon_seconds:.1}s: {} {:.0}%",
                    n.label,
                    100.0 * n.probability
                ));
            }
        }
        HeadRecord::Forecast {
            expected,
            horizon_seconds,
        } => {
            if let Some(s) = expected.first() {
                lines.push(format!("in {horizon_seconds:.1}s: {}", s.label));
            }
        }
    }
    if let Some(s) = record.surprise {
        lines.push(format!("surprise {s:.2}"));
    }
    for e in &record.events {
        lines.push(format!("! {e}"));
    }
    let line_h = plot::text_height(1) as i32 + 3;
    let height = (lines.len() as i32 * line_h + 4).min(size as i32);
    for y in 0..height.max(0) as u32 {
        for x in 0..size {
            let p = img.get_pixel_mut(x, y);
            *p = Rgb([p[0] / 3, p[1] / 3, p[2] / 3]);
        }
    }
    for (i, line) in lines.iter().enumerate() {
        let color = if line.starts_with('!') {
            Rgb([255, 200, 60])
        } else {
            Rgb([255, 255, 255])
        };
        plot::draw_text(&mut img, 3, 3 + i as i32 * line_h, line, color, 1);
    }
    img
}

/// The annotated video: sampled frames with their records drawn on, at the sampling rate
/// (for `--fps`, that rate; otherwise measured from the first two frames).
struct Annotated {
    path: PathBuf,
    size: u32,
    options: DecodeOptions,
    /// The first frame and its time, held until the second tells the rate.
    first: Option<(f64, RgbImage)>,
    video: Option<VideoWriter>,
}

impl Annotated {
    fn push(&mut self, record: &Record, frame: Vec<u8>) -> Result<()> {
        let img = annotate(frame, self.size, record);
        if let Some(video) = self.video.as_mut() {
            return video.push(img.as_raw());
        }
        match self.first.take() {
            None => self.first = Some((record.timestamp, img)),
            Some((t0, first)) => {
                let mut video = self.open(Some(record.timestamp - t0))?;
                video.push(first.as_raw())?;
                video.push(img.as_raw())?;
                self.video = Some(video);
            }
        }
        Ok(())
    }

    fn open(&self, gap: Option<f64>) -> Result<VideoWriter> {
        let fps = match (self.options.sampling.every, gap) {
            (Every::Fps(f), _) => f.round().max(1.0) as u32,
            (_, Some(g)) if g > 0.0 => (1.0 / g).round().clamp(1.0, 120.0) as u32,
            _ => 25,
        };
        VideoWriter::create(&self.path, self.size, self.size, fps)
    }

    fn finish(mut self) -> Result<()> {
        if let Some((_, first)) = self.first.take() {
            let mut video = self.open(None)?;
            video.push(first.as_raw())?;
            self.video = Some(video);
        }
        let Some(video) = self.video else {
            return Ok(());
        };
        let (codec, (w, h), frames) = (video.codec(), video.encoded_size(), video.frames());
        video.finish()?;
        tracing::info!(
            "{}: {frames} annotated frames, {w}x{h} {codec:?}",
            self.path.display()
        );
        Ok(())
    }
}

enum Message {
    Record(Box<Record>, Option<Vec<u8>>),
    /// The video ended well: the outputs may be completed. Without it they are dropped.
    Done,
}

pub fn run(args: &RunArgs) -> Result<Failures> {
    let format = args.format.unwrap_or_else(|| {
        match args
            .out
            .as_ref()
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
        {
            Some(e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::Jsonl,
        }
    });
    if !args.input.is_file() {
        return Err(anyhow!("{}: no such file", args.input.display()));
    }
    let mut analysis = Analysis::prepare(&args.analysis)?;
    let writer = RecordWriter::create(args.out.as_deref(), format)?;
    let size = analysis.options.size;
    let options = analysis.options.clone();
    let (annotate_path, plot_path) = (args.annotate.clone(), args.plot.clone());
    let title = args
        .input
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let (tx, rx) = mpsc::sync_channel::<Message>(64);
    // The writer thread: formatting, drawing, encoding and writing, off the model's thread.
    let output = std::thread::spawn(move || -> Result<()> {
        let mut writer = writer;
        let mut timeline = plot_path.as_ref().map(|_| Timeline::default());
        let mut annotated = annotate_path.map(|path| Annotated {
            path,
            size,
            options,
            first: None,
            video: None,
        });
        let mut complete = false;
        for message in rx {
            let (record, frame) = match message {
                Message::Record(record, frame) => (record, frame),
                Message::Done => {
                    complete = true;
                    break;
                }
            };
            writer.write(&record)?;
            if let Some(t) = timeline.as_mut() {
                t.push(&record);
            }
            if let (Some(a), Some(frame)) = (annotated.as_mut(), frame) {
                a.push(&record, frame)?;
            }
        }
        if !complete {
            // The video failed: dropping the writers removes their temporary files.
            return Ok(());
        }
        // The plot and the video first: the records appear only when everything succeeded.
        if let Some(a) = annotated {
            a.finish()?;
        }
        if let (Some(path), Some(t)) = (&plot_path, timeline) {
            plot::save_png(&t.render(&title), path)?;
        }
        writer.finish()
    });
    let keep_frames = args.annotate.is_some();
    let result = analysis.video(&args.input, keep_frames, |record, frame| {
        tx.send(Message::Record(Box::new(record), frame))
            .map_err(|_| anyhow!("the writer stopped"))
    });
    if result.is_ok() {
        let _ = tx.send(Message::Done);
    }
    drop(tx);
    let written = output
        .join()
        .map_err(|_| anyhow!("the writer thread panicked"))?;
    // A writer that failed (disk full, say) stopped the analysis too: its error is the cause.
    written?;
    let summary = result.with_context(|| args.input.display().to_string())?;
    print_summary(&args.input, &summary, &analysis.head);
    Ok(Failures::default())
}

/// The end-of-run summary on stderr.
pub fn print_summary(path: &Path, s: &VideoSummary, head: &StreamingHead) {
    let card = &head.card;
    eprintln!(
        "{}: {} frames over {:.2} s of video in {:.1} s ({:.1} frames/s); head: {} ({}{})",
        path.display(),
        s.frames,
        s.video_seconds,
        s.wall_seconds,
        s.frames_per_second,
        head.source,
        match card.task {
            Task::Classify => "classify",
            Task::Anticipate => "anticipate",
            Task::Forecast => "forecast",
        },
        card.horizon_seconds
            .map_or(String::new(), |h| format!(", {h} s ahead"))
    );
    let top = s.top_events(5);
    if top.is_empty() {
        eprintln!("no events");
    } else {
        eprintln!("top events:");
        for e in top {
            eprintln!("  {:>8.2} s  {}", e.timestamp, e.text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_change_counts_once_it_holds_for_two_frames() {
        let mut d = Debounced::default();
        assert_eq!(d.observe("a"), None);
        assert_eq!(d.observe("b"), None);
        assert_eq!(d.observe("a"), None, "one-frame flicker is no change");
        assert_eq!(d.observe("b"), None);
        assert_eq!(d.observe("b"), Some(("a".into(), "b".into())));
        assert_eq!(d.observe("b"), None);
    }

    #[test]
    fn surprise_peaks_stand_out_from_the_video_so_far() {
        let mut e = Events::default();
        let head = HeadRecord::Forecast {
            horizon_seconds: 1.0,
            expected: Vec::new(),
        };
        let values = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.1, 0.9, 5.0, 1.0];
        let peaks: Vec<usize> = values
            .iter()
            .enumerate()
            .filter(|(i, v)| {
                e.observe(*i as f64, &[], &head, Some(**v))
                    .contains(&"surprise".to_string())
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(peaks, [9]);
    }

    #[test]
    fn csv_quotes_fields_that_need_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
    }
}

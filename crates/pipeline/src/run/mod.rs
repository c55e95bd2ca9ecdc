//! One video through the analysis to its outputs: decoding runs on its own thread, the CNN
//! and the head on the caller's, and a writer thread formats, annotates and writes, so memory
//! stays flat on long videos and the network never waits for the disk.
//!
//! A file's outputs appear complete or not at all. A live or streamed source's records are
//! written as they come (a run that is killed leaves every record so far), and its plot and
//! annotated video are completed when it ends, however it ends: a stop (Ctrl-C) is its normal
//! end. A file whose run is stopped leaves nothing ([`RunError::Interrupted`]).

use std::path::PathBuf;
use std::sync::mpsc;

use anyhow::anyhow;
use image::RgbImage;

pub mod annotate;
pub mod records;
pub mod timeline;

use crate::analysis::{Analysis, Anomaly, Record, VideoSummary};
use crate::plot;
use annotate::Annotated;
use media::Source;
use records::{Format, RecordWriter};
use timeline::Timeline;

/// Where one video's results go.
#[derive(Debug, Clone)]
pub struct RunOutputs {
    /// The records: a file that appears only when complete, or stdout.
    pub records: Option<PathBuf>,
    pub format: Format,
    /// A timeline PNG.
    pub plot: Option<PathBuf>,
    /// The sampled frames with their records drawn on, as video.
    pub annotate: Option<PathBuf>,
    /// Longer side of the annotated video's frames, at most (never scaled up; made even).
    pub annotate_size: u32,
    /// The timeline's title.
    pub title: String,
}

/// Why a run failed: the input (it could not be read or decoded), the outputs (they could
/// not be written), or a stop before a file's end (nothing was written). Callers report them
/// differently.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0:#}")]
    Input(anyhow::Error),
    #[error("{0:#}")]
    Output(anyhow::Error),
    #[error("{0}: interrupted before its end; nothing written")]
    Interrupted(String),
}

enum Message {
    Record(Box<Record>, Option<RgbImage>),
    /// The video ended well, with these anomalies: the outputs may be completed. Without it
    /// they are dropped.
    Done(Vec<Anomaly>),
}

/// Analyses `input` and writes `outputs`. For a file, either every output is complete or none
/// is there; a live or streamed source's records are written as they come.
pub fn run_video(
    analysis: &mut Analysis,
    input: &Source,
    outputs: &RunOutputs,
) -> Result<VideoSummary, RunError> {
    let writing = Writing::start(input, outputs, analysis.options.clone())?;
    let display = outputs.annotate.as_ref().map(|_| outputs.annotate_size);
    let result = analysis.video(input, display, |record, frame| writing.send(record, frame));
    writing.finish(result)
}

/// Analyses several sources at once on the analysis's one backbone ([`Analysis::videos`]),
/// each to its own outputs (`outputs[i]` for `inputs[i]`; the annotated videos' size is the
/// first's); `done` gets each source's outcome as it ends. A source that fails does not stop
/// the others.
pub fn run_videos(
    analysis: &Analysis,
    inputs: &[Source],
    outputs: &[RunOutputs],
    mut done: impl FnMut(usize, Result<VideoSummary, RunError>),
) {
    let mut writings = Vec::new();
    // The sources whose outputs could be started, and their indices in `inputs`.
    let mut started = Vec::new();
    let mut index = Vec::new();
    for (i, (input, out)) in inputs.iter().zip(outputs).enumerate() {
        match Writing::start(input, out, analysis.options.clone()) {
            Ok(writing) => {
                writings.push(Some(writing));
                started.push(input.clone());
                index.push(i);
            }
            Err(e) => done(i, Err(e)),
        }
    }
    let display = outputs
        .first()
        .filter(|o| o.annotate.is_some())
        .map(|o| o.annotate_size);
    // Both callbacks run on this thread, one at a time.
    let writings = std::cell::RefCell::new(writings);
    analysis.videos(
        &started,
        display,
        |i, record, frame| match &writings.borrow()[i] {
            Some(writing) => writing.send(record, frame),
            None => Err(anyhow!("the outputs were closed")),
        },
        |i, result| {
            let writing = writings.borrow_mut()[i].take();
            if let Some(writing) = writing {
                done(index[i], writing.finish(result));
            }
        },
    );
}

/// One source's outputs, written on a thread of their own: formatting, drawing, encoding and
/// writing, off the model's thread.
struct Writing {
    input: Source,
    tx: mpsc::SyncSender<Message>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Writing {
    /// Starts the outputs: the records to a file that appears when complete (made now, so an
    /// unwritable folder fails before any work), or, once the first record shows the source
    /// is live or streamed, to a file written as it goes.
    fn start(
        input: &Source,
        outputs: &RunOutputs,
        options: media::DecodeOptions,
    ) -> Result<Self, RunError> {
        let format = outputs.format;
        let records = outputs.records.clone();
        let writer = RecordWriter::create(records.as_deref(), format).map_err(RunError::Output)?;
        let (annotate_path, plot_path) = (outputs.annotate.clone(), outputs.plot.clone());
        let title = outputs.title.clone();
        // Fewer records wait when each holds its whole frame (2.7 MB at 1280x720).
        let queue = if annotate_path.is_some() { 16 } else { 64 };
        let (tx, rx) = mpsc::sync_channel::<Message>(queue);
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            let mut writer = writer;
            let mut first = true;
            let mut timeline = plot_path.as_ref().map(|_| Timeline::default());
            let mut annotated = annotate_path.map(|path| Annotated::new(path, options));
            let mut complete = false;
            for message in rx {
                let (record, frame) = match message {
                    Message::Record(record, frame) => (record, frame),
                    Message::Done(anomalies) => {
                        if let Some(t) = timeline.as_mut() {
                            t.shade(&anomalies);
                        }
                        complete = true;
                        break;
                    }
                };
                // Records with arrival times are a live or streamed source's: its file is
                // written as it goes (stdout is, whatever the source).
                if std::mem::take(&mut first) && record.timing.is_some() && records.is_some() {
                    writer = RecordWriter::create_live(records.as_deref(), format)?;
                }
                writer.write(&record)?;
                if let Some(t) = timeline.as_mut() {
                    t.push(&record);
                }
                if let (Some(a), Some(frame)) = (annotated.as_mut(), frame) {
                    a.push(&record, frame)?;
                }
            }
            if !complete {
                // The video failed: dropping the writers removes their temporary files (a live
                // file keeps the records it has).
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
        Ok(Self {
            input: input.clone(),
            tx,
            thread,
        })
    }

    fn send(&self, record: Record, frame: Option<RgbImage>) -> anyhow::Result<()> {
        self.tx
            .send(Message::Record(Box::new(record), frame))
            .map_err(|_| anyhow!("the writer stopped"))
    }

    /// Completes the outputs after the analysis ended with `result`, or abandons them: a
    /// failure, or a file stopped before its end (a live or streamed source's stop is its
    /// end).
    fn finish(self, result: anyhow::Result<VideoSummary>) -> Result<VideoSummary, RunError> {
        let Self { input, tx, thread } = self;
        let cut_short = |s: &VideoSummary| s.interrupted && s.live.is_none();
        if let Ok(summary) = &result
            && !cut_short(summary)
        {
            let _ = tx.send(Message::Done(summary.anomalies.clone()));
        }
        drop(tx);
        let written = thread
            .join()
            .map_err(|_| RunError::Output(anyhow!("the writer thread panicked")))?;
        // A writer that failed (disk full, say) stopped the analysis too: its error is the
        // cause.
        written.map_err(RunError::Output)?;
        match result {
            Ok(summary) if cut_short(&summary) => Err(RunError::Interrupted(input.name())),
            Ok(summary) => Ok(summary),
            Err(e) => Err(RunError::Input(match input.path() {
                Some(path) => crate::inputs::about(path, e),
                None => e,
            })),
        }
    }
}

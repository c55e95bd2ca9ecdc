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
use media::{Liveness, Source};
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
    // Before the source is opened: an http(s) URL counts as streamed here, whatever it serves.
    let streamed = input.liveness(false) != Liveness::File;
    let writer = if streamed {
        RecordWriter::create_live(outputs.records.as_deref(), outputs.format)
    } else {
        RecordWriter::create(outputs.records.as_deref(), outputs.format)
    }
    .map_err(RunError::Output)?;
    let options = analysis.options.clone();
    let (annotate_path, plot_path) = (outputs.annotate.clone(), outputs.plot.clone());
    let title = outputs.title.clone();
    // Fewer records wait when each holds its whole frame (2.7 MB at 1280x720).
    let queue = if annotate_path.is_some() { 16 } else { 64 };
    let (tx, rx) = mpsc::sync_channel::<Message>(queue);
    // The writer thread: formatting, drawing, encoding and writing, off the model's thread.
    let output = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut writer = writer;
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
    let display = outputs.annotate.as_ref().map(|_| outputs.annotate_size);
    let result = analysis.video(input, display, |record, frame| {
        tx.send(Message::Record(Box::new(record), frame))
            .map_err(|_| anyhow!("the writer stopped"))
    });
    // A file stopped before its end leaves nothing; any other source's stop is its end.
    let complete = match &result {
        Ok(summary) => !summary.interrupted || streamed,
        Err(_) => false,
    };
    if let (true, Ok(summary)) = (complete, &result) {
        let _ = tx.send(Message::Done(summary.anomalies.clone()));
    }
    drop(tx);
    let written = output
        .join()
        .map_err(|_| RunError::Output(anyhow!("the writer thread panicked")))?;
    // A writer that failed (disk full, say) stopped the analysis too: its error is the cause.
    written.map_err(RunError::Output)?;
    match result {
        Ok(summary) if summary.interrupted && !streamed => Err(RunError::Interrupted(input.name())),
        Ok(summary) => Ok(summary),
        Err(e) => Err(RunError::Input(match input.path() {
            Some(path) => crate::inputs::about(path, e),
            None => e,
        })),
    }
}

//! `pipeline run`: the main job on one video.

use anyhow::anyhow;
use pipeline::analysis::{Analysis, VideoSummary};
use pipeline::head::StreamingHead;
use pipeline::run::records::Format;
use pipeline::run::{RunError, RunOutputs, run_video};

use crate::cli::RunArgs;
use crate::cli::exit::{Classify as _, Done, Fatal, Outcome};

pub fn run(args: &RunArgs) -> Outcome {
    let format = args
        .format
        .map_or_else(|| Format::for_path(args.out.as_deref()), Into::into);
    if !args.input.is_file() {
        return Err(Fatal::usage(anyhow!(
            "{}: no such file",
            args.input.display()
        )));
    }
    let mut analysis = Analysis::prepare(&args.analysis.settings()).usage()?;
    let outputs = RunOutputs {
        records: args.out.clone(),
        format,
        plot: args.plot.clone(),
        annotate: args.annotate.clone(),
        annotate_size: args.annotate_size,
        title: args
            .input
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
    };
    match run_video(&mut analysis, &args.input, &outputs) {
        Ok(summary) => {
            print_summary(&args.input.display().to_string(), &summary, &analysis.head);
            Ok(Done::ALL)
        }
        Err(RunError::Input(e)) => Err(Fatal::input(e)),
        Err(RunError::Output(e)) => Err(Fatal::runtime(e)),
    }
}

/// The end-of-run summary on stderr.
fn print_summary(input: &str, s: &VideoSummary, head: &StreamingHead) {
    let card = &head.card;
    eprintln!(
        "{input}: {} frames over {:.2} s of video in {:.1} s ({:.1} frames/s); head: {} ({}{})",
        s.frames,
        s.video_seconds,
        s.wall_seconds,
        s.frames_per_second,
        head.source,
        card.task().name(),
        card.horizon_seconds
            .map_or(String::new(), |h| format!(", {h} s ahead"))
    );
    if !s.anomalies.is_empty() {
        eprintln!("anomalies:");
        for a in &s.anomalies {
            let end = a.end.unwrap_or(a.start);
            eprintln!(
                "  {:>8.2} - {end:.2} s  {} (score {:.2})",
                a.start,
                a.kind.name(),
                a.score
            );
        }
    }
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

//! `pipeline run`: the main job on one video, file or live.

use anyhow::anyhow;
use pipeline::analysis::{Analysis, LiveSummary, VideoSummary};
use pipeline::head::StreamingHead;
use pipeline::run::records::Format;
use pipeline::run::{RunError, RunOutputs, run_video};

use crate::cli::RunArgs;
use crate::cli::exit::{Classify as _, Done, Fatal, Outcome};

pub fn run(args: &RunArgs) -> Outcome {
    let format = args
        .format
        .map_or_else(|| Format::for_path(args.out.as_deref()), Into::into);
    let source = args.source.source(&args.input);
    if let Some(path) = source.path().filter(|p| !p.exists()) {
        let hint = if source.format().is_some() {
            ""
        } else {
            " (a URL needs its scheme, e.g. rtsp://; a device needs --input-format)"
        };
        return Err(Fatal::usage(anyhow!(
            "{}: no such file{hint}",
            path.display()
        )));
    }
    let stop = crate::cli::interrupt::install().runtime()?;
    let mut settings = args.analysis.settings();
    settings.read = args.source.read(stop);
    let mut analysis = Analysis::prepare(&settings).usage()?;
    let outputs = RunOutputs {
        records: args.out.clone(),
        format,
        plot: args.plot.clone(),
        annotate: args.annotate.clone(),
        annotate_size: args.annotate_size,
        title: source
            .path()
            .and_then(|p| p.file_name())
            .map_or_else(|| source.name(), |n| n.to_string_lossy().into_owned()),
    };
    match run_video(&mut analysis, &source, &outputs) {
        Ok(summary) => {
            print_summary(&source.name(), &summary, &analysis.head);
            Ok(Done::ALL)
        }
        Err(RunError::Input(e)) => Err(Fatal::input(e)),
        Err(RunError::Output(e)) => Err(Fatal::runtime(e)),
        Err(e @ RunError::Interrupted(_)) => Err(Fatal::interrupted(e.into())),
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
    if let Some(live) = &s.live {
        print_live(live, s.interrupted);
    }
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

/// How a live or streamed source kept up.
fn print_live(live: &LiveSummary, interrupted: bool) {
    let mut parts = vec![format!(
        "latency {:.3} s median, {:.3} s p95 (from arrival)",
        live.latency_median, live.latency_p95
    )];
    if live.live {
        parts.push(format!("{} frames dropped", live.frames_dropped));
        if live.packets_skipped > 0 {
            parts.push(format!(
                "{} packets skipped to catch up",
                live.packets_skipped
            ));
        }
        parts.push(format!("{} reconnects", live.reconnects));
    }
    let end = match (&live.ended, interrupted) {
        (_, true) => "; stopped".to_string(),
        (Some(why), false) => format!("; ended: {why}"),
        (None, false) => String::new(),
    };
    eprintln!(
        "{}: {}{end}",
        if live.live { "live" } else { "streamed" },
        parts.join(", ")
    );
}

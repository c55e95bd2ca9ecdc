//! `pipeline run`: the main job on one video, file or live.

use anyhow::anyhow;
use media::Source;
use pipeline::analysis::{Analysis, LiveSummary, VideoSummary};
use pipeline::head::StreamingHead;
use pipeline::run::records::Format;
use pipeline::run::{RunError, RunOutputs, run_video, run_videos};

use crate::cli::RunArgs;
use crate::cli::exit::{Classify as _, Done, Failures, Fatal, Outcome};

pub fn run(args: &RunArgs) -> Outcome {
    let sources: Vec<Source> = args
        .inputs
        .iter()
        .map(|input| args.source.source(input))
        .collect();
    if sources.len() > 1 {
        return run_several(args, &sources);
    }
    let source = &sources[0];
    if let Some(e) = missing(source) {
        return Err(Fatal::usage(e));
    }
    let format = args
        .format
        .map_or_else(|| Format::for_path(args.out.as_deref()), Into::into);
    let mut analysis = prepare(args)?;
    let outputs = RunOutputs {
        records: args.out.clone(),
        format,
        plot: args.plot.clone(),
        annotate: args.annotate.clone(),
        annotate_size: args.annotate_size,
        title: title(source),
    };
    match run_video(&mut analysis, source, &outputs) {
        Ok(summary) => {
            print_summary(&source.name(), &summary, &analysis.head);
            Ok(Done::ALL)
        }
        Err(RunError::Input(e)) => Err(Fatal::input(e)),
        Err(RunError::Output(e)) => Err(Fatal::runtime(e)),
        Err(e @ RunError::Interrupted(_)) => Err(Fatal::interrupted(e.into())),
    }
}

/// Several sources at once, one backbone: `--out DIR` gets `<name>.jsonl` (or .csv) per
/// source, `--plot DIR` and `--annotate DIR` a PNG and a video per source, each named from the
/// source (redacted) and made unique. A source that fails is reported and the others go on.
fn run_several(args: &RunArgs, sources: &[Source]) -> Outcome {
    let Some(dir) = args.out.as_deref() else {
        return Err(Fatal::usage(anyhow!(
            "several sources need --out DIR: each gets its own records file there"
        )));
    };
    let format = args.format.map_or(Format::Jsonl, Into::into);
    let names = unique_names(sources);
    let outputs: Vec<RunOutputs> = sources
        .iter()
        .zip(&names)
        .map(|(source, name)| RunOutputs {
            records: Some(dir.join(format!("{name}.{}", format.extension()))),
            format,
            plot: args.plot.as_ref().map(|d| d.join(format!("{name}.png"))),
            annotate: args
                .annotate
                .as_ref()
                .map(|d| d.join(format!("{name}.mp4"))),
            annotate_size: args.annotate_size,
            title: title(source),
        })
        .collect();
    // Missing files are reported now; the rest start.
    let mut failures = Failures::default();
    let (mut present, mut present_outputs) = (Vec::new(), Vec::new());
    for (source, out) in sources.iter().zip(outputs) {
        match missing(source) {
            Some(e) => failures.record(Err(e)),
            None => {
                present.push(source.clone());
                present_outputs.push(out);
            }
        }
    }
    if present.is_empty() {
        return failures.done();
    }
    let analysis = prepare(args)?;
    let mut interrupted = Vec::new();
    run_videos(&analysis, &present, &present_outputs, |i, result| {
        let name = present[i].name();
        match result {
            Ok(summary) => print_summary(&name, &summary, &analysis.head),
            Err(e @ RunError::Interrupted(_)) => interrupted.push(e.to_string()),
            Err(RunError::Output(e)) => {
                failures.record(Err(e.context(format!("{name}: writing its outputs"))));
            }
            Err(RunError::Input(e)) => failures.record(Err(e)),
        }
    });
    if !interrupted.is_empty() {
        return Err(Fatal::interrupted(anyhow!("{}", interrupted.join("; "))));
    }
    failures.done()
}

/// One line when a file source does not exist (a URL without its scheme, a device without
/// --input-format, or a typo).
fn missing(source: &Source) -> Option<anyhow::Error> {
    let path = source.path().filter(|p| !p.exists())?;
    let hint = if source.format().is_some() {
        ""
    } else {
        " (a URL needs its scheme, e.g. rtsp://; a device needs --input-format)"
    };
    Some(anyhow!("{}: no such file{hint}", path.display()))
}

/// The models loaded, with Ctrl-C handled and reading set up from the flags.
fn prepare(args: &RunArgs) -> Result<Analysis, Fatal> {
    let stop = crate::cli::interrupt::install().runtime()?;
    let mut settings = args.analysis.settings();
    settings.read = args.source.read(stop);
    Analysis::prepare(&settings).usage()
}

/// A plot's title: the file's name, or the source's (redacted).
fn title(source: &Source) -> String {
    source
        .path()
        .and_then(|p| p.file_name())
        .map_or_else(|| source.name(), |n| n.to_string_lossy().into_owned())
}

/// Output names for `sources`: each one's [`Source::stem`], a `-2`, `-3`... after a name
/// taken before.
fn unique_names(sources: &[Source]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for source in sources {
        let stem = source.stem();
        let mut name = stem.clone();
        let mut k = 2;
        while names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            name = format!("{stem}-{k}");
            k += 1;
        }
        names.push(name);
    }
    names
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_are_unique_and_redacted() {
        let sources: Vec<Source> = [
            "a/cam.mp4",
            "b/cam.mp4",
            "rtsp://u:pw@cam/live",
            "B/CAM.mkv",
        ]
        .iter()
        .map(|s| Source::parse(std::ffi::OsStr::new(s), None))
        .collect();
        assert_eq!(
            unique_names(&sources),
            ["cam", "cam-2", "cam_live", "CAM-3"]
        );
    }
}

//! `run` over many files, resumable and shardable: what `pipeline batch` does.
//!
//! For each input `DIR/a/b.mp4` it writes `OUT/a/b.mp4.jsonl` (the records) and then
//! `OUT/a/b.mp4.summary.json` (what was run on what: the input's size and mtime, the head and
//! the settings, plus the frame count and events). Both appear only when complete. A rerun skips
//! an input whose summary matches the input and settings and whose records are there.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow};
use serde::{Deserialize, Serialize};

use crate::analysis::{Analysis, AnalysisSettings, Event, VideoSummary};
use crate::hash::hash_bytes;
use crate::inputs::{self, InputFile};
use crate::output::write_json;
use crate::progress::{self, BarSpec, Unit};
use crate::run::records::{Format, RecordWriter};

/// What `batch` runs on what, validated.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    /// Video files and directories (walked recursively for video files), in this order.
    pub inputs: Vec<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    pub format: Format,
    /// Videos processed at once, sharing one backbone.
    pub jobs: usize,
    /// Only this machine's share `(i, n)`.
    pub shard: Option<(u32, u32)>,
    /// Redo inputs whose output is already complete and current.
    pub force: bool,
    pub analysis: AnalysisSettings,
}

/// What an output was made from; a rerun redoes the input when any of it differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Provenance {
    #[serde(serialize_with = "inputs::serialize_lossy")]
    input: PathBuf,
    size: u64,
    modified_ns: u128,
    head: String,
    settings: String,
    producer: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileSummary {
    provenance: Provenance,
    frames: u64,
    video_seconds: f64,
    wall_seconds: f64,
    frames_per_second: f64,
    damaged: u64,
    events: Vec<Event>,
}

/// Why a batch stopped: it could not start (arguments, inputs, model, output folder), or it
/// could not finish (the summary could not be written, a worker died). A failing input does
/// not stop a batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("{0:#}")]
    Setup(anyhow::Error),
    #[error("{0:#}")]
    Runtime(anyhow::Error),
}

/// `OUT/summary.json`, and what [`run`] returns.
#[derive(Debug, Serialize)]
pub struct BatchSummary {
    pub shard: Option<String>,
    pub inputs: usize,
    pub done: usize,
    pub skipped: usize,
    pub failed: usize,
    pub frames: u64,
    pub wall_seconds: f64,
    pub frames_per_second: f64,
    /// The error log, when some input failed.
    pub errors: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct ErrorLine<'a> {
    #[serde(serialize_with = "inputs::serialize_lossy")]
    input: &'a Path,
    error: String,
}

enum Outcome {
    Done(u64),
    Skipped,
    Failed,
}

/// Whether `file` belongs to shard `i` of `n`: a stable hash of its relative path, so every
/// machine given the same inputs agrees without talking to the others.
fn in_shard(file: &InputFile, (i, n): (u32, u32)) -> bool {
    hash_bytes(file.relative.to_string_lossy().as_bytes()) % u64::from(n) == u64::from(i)
}

fn output_paths(out: &Path, file: &InputFile, extension: &str) -> (PathBuf, PathBuf) {
    let base = out.join(&file.relative);
    let with = |suffix: &str| {
        let mut name = base.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        base.with_file_name(name)
    };
    (with(&format!(".{extension}")), with(".summary.json"))
}

fn provenance(file: &InputFile, head: &str, settings: &str) -> Result<Provenance> {
    let meta = std::fs::metadata(&file.path).with_context(|| format!("{}", file.path.display()))?;
    Ok(Provenance {
        input: file.path.clone(),
        size: meta.len(),
        modified_ns: meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos()),
        head: head.to_string(),
        settings: settings.to_string(),
        producer: format!("pipeline {}", env!("CARGO_PKG_VERSION")),
    })
}

fn is_current(summary: &Path, records: &Path, wanted: &Provenance) -> bool {
    records.is_file()
        && std::fs::read_to_string(summary)
            .ok()
            .and_then(|t| serde_json::from_str::<FileSummary>(&t).ok())
            .is_some_and(|s| s.provenance == *wanted)
}

/// Runs every input of this shard that has no current output, `args.jobs` at a time on one
/// shared backbone. A failing input is logged to the error file and its error (naming it) handed
/// to `on_error`; the others carry on.
pub fn run(
    args: &BatchSettings,
    on_error: &(dyn Fn(&str) + Sync),
) -> Result<BatchSummary, BatchError> {
    use BatchError::{Runtime, Setup};
    let started = Instant::now();
    let mut files = inputs::collect(&args.inputs, inputs::is_video).map_err(Setup)?;
    // Two inputs with the same relative path (`a/x.mp4` and `b/x.mp4` given as files) would
    // write the same output.
    let mut seen = std::collections::HashMap::new();
    for f in &files {
        if let Some(other) = seen.insert(f.relative.clone(), &f.path) {
            return Err(Setup(anyhow!(
                "{} and {} would both write {}: pass their common parent directory instead",
                other.display(),
                f.path.display(),
                args.out.join(&f.relative).display()
            )));
        }
    }
    let total_inputs = files.len();
    if let Some(shard) = args.shard {
        files.retain(|f| in_shard(f, shard));
        tracing::info!(
            "shard {}/{}: {} of {} inputs",
            shard.0,
            shard.1,
            files.len(),
            total_inputs
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))
        .map_err(Setup)?;
    crate::output::remove_stale_temp_files(&args.out);
    let errors_path = args.out.join(match args.shard {
        Some((i, n)) => format!("errors-{i}-of-{n}.jsonl"),
        None => "errors.jsonl".into(),
    });
    let _ = std::fs::remove_file(&errors_path);

    // One worker per job, all on one backbone: each decodes its own video on its own thread
    // and runs the network while the others decode, so the CPU (or GPU) stays busy between and
    // within files.
    let jobs = args.jobs.clamp(1, files.len().max(1));
    let first = Analysis::prepare(&args.analysis).map_err(Setup)?;
    let mut analyses: Vec<Analysis> = (1..jobs).map(|_| first.worker()).collect();
    analyses.push(first);
    let first = &analyses[0];
    let head = format!(
        "{} weights={:016x}",
        first.head.source, first.head.fingerprint
    );
    let anomaly = args.analysis.anomaly;
    let settings = format!(
        "{} | size={} | top={} | format={:?} | backbone={} | motion={} | sensitivity={} | freeze-after={}",
        first.options.sampling.describe(),
        first.options.size,
        args.analysis.top,
        args.format,
        first.backbone.fingerprint,
        crate::features::describe_motion(&first.options),
        anomaly.sensitivity,
        anomaly.freeze_after
    );

    let bar = progress::bar(BarSpec {
        prefix: "files".into(),
        total: Some(files.len() as u64),
        unit: Unit::Items,
    });
    let queue = Mutex::new(files.iter());
    let results: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    let errors = Mutex::new(None::<std::fs::File>);
    std::thread::scope(|scope| {
        for mut analysis in analyses {
            let (queue, results, errors, bar) = (&queue, &results, &errors, &bar);
            let (head, settings, errors_path) = (&head, &settings, &errors_path);
            scope.spawn(move || {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some(file) = next else { break };
                    let outcome = match process(&mut analysis, args, file, head, settings) {
                        Ok(Some(frames)) => Outcome::Done(frames),
                        Ok(None) => Outcome::Skipped,
                        Err(e) => {
                            let error = format!("{e:#}");
                            on_error(&format!("{:#}", inputs::about(&file.path, e)));
                            if let Ok(mut log) = errors.lock() {
                                let line = ErrorLine {
                                    input: &file.path,
                                    error,
                                };
                                let _ = append_line(&mut log, errors_path, &line);
                            }
                            Outcome::Failed
                        }
                    };
                    if let Ok(mut r) = results.lock() {
                        r.push(outcome);
                        bar.set_position(r.len() as u64);
                        let failed = r.iter().filter(|o| matches!(o, Outcome::Failed)).count();
                        bar.set_message(format!("{failed} failed"));
                    }
                }
            });
        }
    });
    drop(bar);
    let results = results
        .into_inner()
        .map_err(|_| Runtime(anyhow!("a worker panicked")))?;
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|o| f(o)).count();
    let frames: u64 = results
        .iter()
        .map(|o| if let Outcome::Done(f) = o { *f } else { 0 })
        .sum();
    let wall = started.elapsed().as_secs_f64();
    let failed = count(|o| matches!(o, Outcome::Failed));
    let summary = BatchSummary {
        shard: args.shard.map(|(i, n)| format!("{i}/{n}")),
        inputs: files.len(),
        done: count(|o| matches!(o, Outcome::Done(_))),
        skipped: count(|o| matches!(o, Outcome::Skipped)),
        failed,
        frames,
        wall_seconds: wall,
        frames_per_second: frames as f64 / wall.max(1e-9),
        errors: (failed > 0).then(|| errors_path.clone()),
    };
    let summary_path = args.out.join(match args.shard {
        Some((i, n)) => format!("summary-{i}-of-{n}.json"),
        None => "summary.json".into(),
    });
    write_json(&summary_path, &summary).map_err(Runtime)?;
    Ok(summary)
}

/// Runs one input unless its output is complete and current; `None` when skipped.
fn process(
    analysis: &mut Analysis,
    args: &BatchSettings,
    file: &InputFile,
    head: &str,
    settings: &str,
) -> Result<Option<u64>> {
    let (records, summary_path) = output_paths(&args.out, file, args.format.extension());
    let wanted = provenance(file, head, settings)?;
    if !args.force && is_current(&summary_path, &records, &wanted) {
        return Ok(None);
    }
    // A stale summary must not vouch for a new, partial output.
    let _ = std::fs::remove_file(&summary_path);
    let mut writer = RecordWriter::create(Some(&records), args.format)?;
    let summary: VideoSummary =
        analysis.video(&media::Source::file(&file.path), None, |record, _| {
            writer.write(&record)
        })?;
    writer.finish()?;
    write_json(
        &summary_path,
        &FileSummary {
            provenance: wanted,
            frames: summary.frames,
            video_seconds: summary.video_seconds,
            wall_seconds: summary.wall_seconds,
            frames_per_second: summary.frames_per_second,
            damaged: summary.damaged,
            events: summary.events,
        },
    )?;
    tracing::debug!(
        "{} -> {}: {} frames",
        file.path.display(),
        records.display(),
        summary.frames
    );
    Ok(Some(summary.frames))
}

fn append_line(log: &mut Option<std::fs::File>, path: &Path, line: &impl Serialize) -> Result<()> {
    use std::io::Write as _;
    if log.is_none() {
        *log = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        );
    }
    if let Some(f) = log.as_mut() {
        let mut text = serde_json::to_vec(line)?;
        text.push(b'\n');
        f.write_all(&text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_input_exactly_once() {
        let files: Vec<InputFile> = (0..500)
            .map(|i| InputFile {
                path: PathBuf::from(format!("/data/v{i}.mp4")),
                relative: PathBuf::from(format!("d{}/v{i}.mp4", i % 7)),
            })
            .collect();
        for n in [1, 2, 3, 8] {
            let mut seen = vec![0; files.len()];
            for i in 0..n {
                for (k, f) in files.iter().enumerate() {
                    if in_shard(f, (i, n)) {
                        seen[k] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "n={n}");
        }
        // Roughly even: no shard of 4 gets under half its share.
        let sizes: Vec<usize> = (0..4)
            .map(|i| files.iter().filter(|f| in_shard(f, (i, 4))).count())
            .collect();
        assert!(sizes.iter().all(|&s| s > 60), "{sizes:?}");
    }

    #[test]
    fn outputs_keep_the_input_name_whole() {
        let f = InputFile {
            path: PathBuf::from("/in/a/clip.mp4"),
            relative: PathBuf::from("a/clip.mp4"),
        };
        let (records, summary) = output_paths(Path::new("/out"), &f, "jsonl");
        assert_eq!(records, PathBuf::from("/out/a/clip.mp4.jsonl"));
        assert_eq!(summary, PathBuf::from("/out/a/clip.mp4.summary.json"));
    }
}
